"""The ``Family`` record: everything cgstudio knows about one model family, in one place.

A family says which architectures it covers, its FIM tokens by role and their order, its chat
format (Gemma turns built token by token, or the GGUF's own Jinja template), the stop spellings of
each mode, the special tokens a GGUF of the family must have, the name pattern that recognises it
from a model id or file name, and hints for telling its variants apart. Every other package asks
``cgstudio.families`` rather than spelling a token itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

ChatKind = Literal["gemma-turns", "template"]
#: PSM: prefix, suffix, middle (what cgstudio sends). SPM: suffix before prefix; its token layout
#: varies between reports, so a family records it only as trained, never as the prompt order.
FimOrder = Literal["PSM", "SPM"]


@dataclass(frozen=True)
class FimTokens:
    """A family's fill-in-the-middle tokens by role, their order, and what stops a completion."""

    prefix: str
    suffix: str
    middle: str
    file_sep: str
    stop_texts: tuple[str, ...]  # besides eos/eot
    add_bos: bool
    repo_style: bool  # a repo-name header and a separator before each context file (Qwen)
    repo_name: str | None = None
    order: FimOrder = "PSM"  # the order cgstudio's prompts use
    trained_orders: tuple[FimOrder, ...] = ("PSM",)  # the orders the family's report says it was trained on

    @property
    def tokens(self) -> tuple[str, str, str, str]:
        """Prefix, suffix, middle and file separator: the four a FIM-capable vocabulary needs."""
        return (self.prefix, self.suffix, self.middle, self.file_sep)


ToolKind = Literal["template", "preamble"]


@dataclass(frozen=True)
class ToolFormat:
    """How a family's chats offer functions and how its replies call them.

    ``template``: the GGUF's own chat template renders ``tools``, assistant ``tool_calls`` and
    ``tool`` messages; the reply puts each call's JSON between ``open`` and ``close``. A GGUF
    template that does not mention ``tools`` and ``open`` cannot render them.
    ``preamble``: cgstudio's format for chat formats with no tool syntax: ``preamble`` (its
    ``{tools}`` replaced by one JSON schema per line) leads the system text, calls are fenced
    blocks between ``open`` and ``close``, and a result is a user turn made from ``result``
    (``{name}`` and ``{content}``).
    """

    kind: ToolKind
    open: str
    close: str
    preamble: str = ""
    result: str = ""
    forced: str = ""  # preamble: appended when a call is required ({names}: the callable functions)


@dataclass(frozen=True)
class ChatFormat:
    """How a family's chat prompts are built.

    ``gemma-turns``: ``<bos>`` then turns opened by ``turn_start`` + role and closed by ``turn_end``.
    ``template``: the GGUF's own Jinja chat template (``fallback_template`` when a remote model has none).
    """

    kind: ChatKind
    stop_texts: tuple[str, ...] = ()
    turn_start: str | None = None
    turn_end: str | None = None
    fallback_template: str | None = None
    # An Ollama-style Go template for the plain (non-FIM) prompt of an instruct model; None: the prompt as is.
    ollama_template: str | None = None
    tools: ToolFormat | None = None  # None: the format cannot offer functions


@dataclass(frozen=True)
class RemoteVocab:
    """What the family's vocabulary looks like, for remote tokenizers that cannot list it."""

    architecture: str
    specials: tuple[str, ...]
    bos: str | None
    eos: str
    eot: str | None
    add_bos: bool
    n_vocab: int


@dataclass(frozen=True)
class VocabRules:
    """What every correct GGUF of the family says about its vocabulary; ``doctor`` fails one that
    differs (converters have dropped each of these). ``label`` names the vocabulary in messages."""

    label: str
    bos: str
    eos: str
    bos_id: int
    eos_id: int
    add_bos: bool = True
    add_space_prefix: bool = False  # SentencePiece vocabularies that must not prepend a space


@dataclass(frozen=True)
class VariantHints:
    """How to tell the family's variants apart beyond the name, and what to suggest instead."""

    template_means_instruct: bool = False  # a chat template in the GGUF says instruction-tuned
    suggest_chat: str = "an instruction-tuned model"
    suggest_fim: str = "a FIM-capable code model"
    suggest_fim_by_size: tuple[tuple[float, str], ...] = ()  # (n_params below, name), first match wins
    instruct_not_for_fim: bool = False  # the instruction-tuned variant was not trained for FIM (CodeGemma)

    @property
    def fim_models(self) -> str:
        """The models to name for FIM: 'codegemma-2b or codegemma-7b'."""
        names = [n for _, n in self.suggest_fim_by_size if n != self.suggest_fim]
        return " or ".join([*names, self.suggest_fim])


@dataclass(frozen=True)
class Family:
    name: str
    architectures: tuple[str, ...]  # empty: any architecture (the catch-all family)
    chat: ChatFormat
    fim: FimTokens | None = None
    required: tuple[str, ...] = ()  # special tokens a GGUF of this family must have
    detect_tokens: tuple[str, ...] = ()  # vocabulary tokens that, with the architecture, identify it
    name_pattern: re.Pattern[str] | None = None  # recognises the family in a model id or file name
    variants: VariantHints = field(default_factory=VariantHints)
    vocab: RemoteVocab | None = None
    key_tokens: tuple[str, ...] = ()  # special tokens ``cgstudio inspect`` lists when present
    label: str = ""  # how diagnostics names the family's chat markup, e.g. "Gemma (turns)"
    rules: VocabRules | None = None  # strict vocabulary rules (None: the family has none to check)

    def matches(self, architecture: str, special_tokens: dict[str, int]) -> bool:
        if self.architectures and architecture not in self.architectures:
            return False
        return all(t in special_tokens for t in self.detect_tokens)

    @property
    def turn_end(self) -> str | None:
        return self.chat.turn_end
