"""Checks on the text a request brings, before it is tokenized."""

from __future__ import annotations

from cgstudio.core.errors import InvalidInputError

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
