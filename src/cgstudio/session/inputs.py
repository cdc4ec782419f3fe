"""Checks on the text a request brings, before it is tokenized."""

from __future__ import annotations

from collections.abc import Mapping

from cgstudio.core.errors import InvalidInputError
from cgstudio.core.prompt import ChatMessage

MAX_INPUT_CHARS = 4_000_000  # far beyond any context; stops 10 MB pastes before tokenizing


def check_text(name: str, text: str) -> str:
    """``text`` if it is a string without NUL characters and within ``MAX_INPUT_CHARS``, else a
    400-class ``InvalidInputError`` that says what to send instead."""
    if not isinstance(text, str):
        raise InvalidInputError(f"{name} must be text")
    if "\x00" in text:
        raise InvalidInputError(f"{name} contains NUL characters; remove them (is it a binary file?)")
    if len(text) > MAX_INPUT_CHARS:
        raise InvalidInputError(
            f"{name} is {len(text):,} characters; the limit is {MAX_INPUT_CHARS:,}. "
            "Send the text near the cursor."
        )
    return text


def to_message(m: Mapping[str, str]) -> ChatMessage:
    """A chat message from a mapping with a known role and text content, else a 400-class error."""
    role, content = m.get("role"), m.get("content")
    if role not in ("system", "user", "assistant"):
        raise InvalidInputError(f"unknown chat role {role!r}; use system, user or assistant")
    if not isinstance(content, str):
        raise InvalidInputError("each chat message needs text content")
    return ChatMessage(role, content)  # type: ignore[arg-type]  # role checked just above
