"""The one request type: what to generate, whatever face or dialect asked for it.

Every face translates into a ``GenerationRequest`` and hands it to ``CodeModel.prompt`` (the
exact prompt, what ``--dry-run`` and ``/v1/prompt`` show) or ``CodeModel.stream`` (the chunks).
Dialects add only transport concerns on top (the server's ``GenSpec``: model name, keep_alive,
endpoint, prewarm); the eval protocol's styles and the CLI's commands map onto these modes:

    mode      input                                     prompt                       user text
    fim       prompt (prefix) + suffix (+ files, path)  the family's FIM format      stays text
    plain     prompt (the code to continue)             FIM, no suffix; or BOS+text  stays text
    raw       prompt: a client-rendered template        as given                     control text -> ids
    chat      messages                                  the family's chat format     stays text
    infill    llama.cpp /infill: prefix, suffix, and     FIM, then ``middle`` after   stays text
              ``middle``, the cursor line left of it    the middle token
    generate  prompt: a request in natural language      chat (-it) or a commented    stays text
              + language (+ explain)                    stub (pretrained)

A raw or plain prompt that holds one complete FIM template (``fim_template``: another family's
markup or the model's own, as ``families.foreign_fim`` recognises it) states a FIM request:
``as_fim`` gives it, and ``CodeModel.prompt`` renders it in the served model's own format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cgstudio.core.engine import Priority
from cgstudio.core.prompt import ChatMessage, ContextFile
from cgstudio.core.tools import ToolChoice, ToolSpec
from cgstudio.families.foreign_fim import ForeignFim, parse_foreign_fim

RequestMode = Literal["fim", "plain", "raw", "chat", "infill", "generate"]
# What a request needs of a model, for routing: FIM tokens, a chat format, or plain continuation.
Capability = Literal["fim", "chat", "completion"]
MessageLike = ChatMessage | Mapping[str, str]


@dataclass
class GenerationRequest:
    """One generation: the mode, its inputs, and per-request sampling and guard overrides."""

    mode: RequestMode
    prompt: str = ""  # the prefix (fim, plain, infill), the rendered text (raw), the request (generate)
    suffix: str = ""  # fim and infill only
    middle: str = ""  # infill: the cursor line left of the cursor, placed after the FIM middle token
    messages: Sequence[MessageLike] | None = None  # chat
    files: tuple[ContextFile, ...] = ()  # fim, plain, infill: other files, before the current one
    path: str | None = None  # the current file's path (its path line in multi-file formats)
    language: str = "python"  # generate
    explain: bool = False  # generate: keep the prose of an instruction-tuned answer
    sampling: dict[str, Any] = field(default_factory=dict)  # SamplingParams overrides
    guards: dict[str, Any] = field(default_factory=dict)  # GuardSettings overrides
    tools: tuple[ToolSpec, ...] = ()  # chat: functions the model may call
    tool_choice: ToolChoice = field(default_factory=ToolChoice)  # chat: auto, none, required or one
    client: str = ""  # who asks (the server's client key): repository context keeps its recent edits
    priority: Priority | None = None  # None: by what it needs (``priority_class``)

    @property
    def capability(self) -> Capability:
        """What the serving model must offer: FIM for fim/infill (and a raw or plain prompt that
        holds a FIM template), a chat format for chat."""
        if self.mode in ("fim", "infill") or self.fim_template is not None:
            return "fim"
        return "chat" if self.mode == "chat" else "completion"

    @property
    def priority_class(self) -> Priority:
        """How urgent it is: a FIM request is an editor keystroke, served before chat (admission
        and every decode step); ``priority`` overrides it."""
        if self.priority is not None:
            return self.priority
        return Priority.EDITOR if self.capability == "fim" else Priority.NORMAL

    @property
    def fim_template(self) -> ForeignFim | None:
        """The one complete client-rendered FIM template a raw or plain prompt holds, taken apart;
        None for other modes and for text that merely mentions a marker."""
        if self.mode not in ("raw", "plain"):
            return None
        return parse_foreign_fim(self.prompt)

    def as_fim(self, fim: ForeignFim) -> GenerationRequest:
        """The FIM request a parsed template states: its prefix (after any text the client put
        before the template), suffix, context files and path; text the client wrote after the
        middle marker becomes the infill ``middle``. Sampling and guards are kept."""
        files = (*self.files, *(ContextFile(path, text) for path, text in fim.files))
        return GenerationRequest(
            "infill" if fim.middle else "fim",
            fim.preamble + fim.prefix,
            fim.suffix,
            middle=fim.middle,
            files=files,
            path=fim.path or self.path,
            sampling=self.sampling,
            guards=self.guards,
        )
