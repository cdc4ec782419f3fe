"""A family's prompt format, built from its ``Family`` record; it checks its tokens exist at load time."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cgstudio.core.errors import ModelFormatError, UnsupportedModeError
from cgstudio.families import FAMILIES, Family
from cgstudio.families.base import ChatFormat, FimTokens
from cgstudio.prompts.chat import ChatRenderer, render_gemma, render_template
from cgstudio.prompts.vocab import Vocab


@dataclass(frozen=True)
class FamilyFormat:
    name: str
    fim: FimTokens | None
    chat: ChatRenderer
    chat_stops: tuple[str, ...]
    required: tuple[str, ...]  # special tokens that must exist in the vocabulary


def chat_renderer(chat: ChatFormat) -> ChatRenderer:
    """The renderer for a family's chat-format kind."""
    if chat.kind == "gemma-turns":
        return functools.partial(render_gemma, chat=chat)
    if chat.kind == "template":
        return render_template
    raise UnsupportedModeError(f"no chat renderer for format kind {chat.kind!r}")


def format_of(family: Family) -> FamilyFormat:
    return FamilyFormat(
        family.name, family.fim, chat_renderer(family.chat), family.chat.stop_texts, family.required
    )


def get_format(family: Family | str, vocab: Vocab) -> FamilyFormat:
    fam = FAMILIES.get(family) if isinstance(family, str) else family
    if fam is None:
        raise UnsupportedModeError(f"no prompt format for family {family!r}; known: {', '.join(FAMILIES)}")
    fmt = format_of(fam)
    missing = [t for t in fmt.required if not vocab.has(t)]
    if missing:
        raise ModelFormatError(
            f"{fam.name} model is missing special tokens {', '.join(missing)} in its vocabulary; "
            "the GGUF conversion is broken or stale: re-convert or download a fresh GGUF"
        )
    return fmt
