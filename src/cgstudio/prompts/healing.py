"""Token healing at the cursor: the text before the cursor loses its last token.

A prefix that ends partway through a token (``return `` ends on a lone space token, ``pri`` is half
of ``print``) forces the model across a boundary it would not have chosen: it writes `` x`` after
the lone space, a doubled space in the editor. Healing takes the last token's text off the
prompt and asks the engine for a first token that starts with it (``DecodeRequest.starts_with``);
the pipeline then emits only what follows it. This is the guidance library's token healing,
backed up by one token.
"""

from __future__ import annotations

from cgstudio.core.engine import TokenKind
from cgstudio.prompts.vocab import Vocab

_TEXT_KINDS = (TokenKind.NORMAL, TokenKind.USER_DEFINED)  # USER_DEFINED: Gemma's whitespace runs
_TAIL_CHARS = 256  # the last token of the text's tail is the text's last token (tokenizers split locally)


def split_last_token(vocab: Vocab, text: str, *, indentation: bool = False) -> tuple[str, str]:
    """``(text without its last token, that token's text)``; ``(text, "")`` when there is nothing to
    heal: no text, a special or byte token last, a last token that is the whole text or holds a
    line break (the cursor at a line's start), or the indentation of a line with nothing else yet.

    ``indentation``: heal that indentation too. The editor layout sends the cursor line after the
    middle token, where the model writes it as its own text: a whole indentation token there is
    not how the model tokenizes an indented line (Qwen2.5-Coder writes 8 spaces and ``self`` as 7
    spaces and `` self``), and it answers with a space too many."""
    tail = text[-_TAIL_CHARS:]
    ids = vocab.plain(tail)
    if not ids:
        return text, ""
    last = ids[-1]
    engine = vocab.engine
    if last in vocab.protected_ids or engine.token_kind(last) not in _TEXT_KINDS:
        return text, ""
    try:
        piece = engine.piece(last).decode("utf-8")
    except UnicodeDecodeError:
        return text, ""
    if not piece or "\n" in piece or len(piece) >= len(text) or not text.endswith(piece):
        return text, ""
    kept = text[: -len(piece)]
    if not indentation and not piece.strip() and not kept.rsplit("\n", 1)[-1].strip():
        return text, ""  # indentation before the suffix: the model knows where lines start
    return kept, piece
