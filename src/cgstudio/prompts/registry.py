"""Prompt formats keyed by family name. A format checks its tokens exist at load time."""

from __future__ import annotations

from dataclasses import dataclass

from cgstudio.core.errors import ModelFormatError, UnsupportedModeError
from cgstudio.prompts.chat import ChatRenderer, render_gemma, render_template
from cgstudio.prompts.fim import CODEGEMMA_FIM, QWEN_FIM, FimSpec
from cgstudio.prompts.vocab import Vocab


@dataclass(frozen=True)
class FamilyFormat:
    name: str
    fim: FimSpec | None
    chat: ChatRenderer
    chat_stops: tuple[str, ...]
    required: tuple[str, ...]  # special tokens that must exist in the vocabulary


FORMATS: dict[str, FamilyFormat] = {
    "codegemma": FamilyFormat(
        "codegemma",
        CODEGEMMA_FIM,
        render_gemma,
        ("<end_of_turn>", "<eos>"),
        required=(*CODEGEMMA_FIM.stop_texts[:4], "<start_of_turn>", "<end_of_turn>"),
    ),
    "gemma": FamilyFormat(
        "gemma", None, render_gemma, ("<end_of_turn>", "<eos>"), required=("<start_of_turn>", "<end_of_turn>")
    ),
    "qwen2.5-coder": FamilyFormat(
        "qwen2.5-coder",
        QWEN_FIM,
        render_template,
        ("<|im_end|>", "<|endoftext|>"),
        required=("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>"),
    ),
    "unknown": FamilyFormat("unknown", None, render_template, (), required=()),
}


def get_format(family: str, vocab: Vocab) -> FamilyFormat:
    fmt = FORMATS.get(family)
    if fmt is None:
        raise UnsupportedModeError(f"no prompt format for family {family!r}; known: {', '.join(FORMATS)}")
    missing = [t for t in fmt.required if not vocab.has(t)]
    if missing:
        raise ModelFormatError(
            f"{family} model is missing special tokens {', '.join(missing)} in its vocabulary; "
            "the GGUF conversion is broken or stale: re-convert or download a fresh GGUF"
        )
    return fmt
