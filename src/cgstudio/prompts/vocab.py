"""Safe tokenization: user text stays plain text, whatever it contains.

llama.cpp turns tokens typed USER_DEFINED into their ids even with special parsing off,
and converters differ in how they type FIM and turn tokens. So we never trust the typing:
we tokenize, check the ids against the protected set, and where text spells a protected
token we split it so that it tokenizes as ordinary pieces.

``plain`` remembers its longer results (``TokenMemo``): an editor sends the same file head,
suffix window and context chunks with every keystroke, and tokenizing them again cost more than
the keystroke's own evaluation once typing became append-only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from cgstudio.core.engine import Engine
from cgstudio.core.errors import ModelFormatError

MEMO_MIN_CHARS = 64  # shorter texts tokenize faster than a lookup pays for
MEMO_MAX_CHARS = 4_000_000  # the texts kept, all together (least recently used dropped first)


class TokenMemo:
    """``plain``'s results by text, least recently used dropped past ``MEMO_MAX_CHARS``."""

    def __init__(self, max_chars: int = MEMO_MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._items: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, text: str) -> tuple[int, ...] | None:
        with self._lock:
            ids = self._items.get(text)
            if ids is not None:
                self._items.move_to_end(text)
            return ids

    def put(self, text: str, ids: list[int]) -> None:
        if len(text) > self.max_chars:
            return
        with self._lock:
            if text not in self._items:
                self._chars += len(text)
            self._items[text] = tuple(ids)
            while self._chars > self.max_chars:
                old, _ = self._items.popitem(last=False)
                self._chars -= len(old)


@dataclass
class Vocab:
    """Token lookups for prompt building, over one engine's vocabulary."""

    engine: Engine
    protected: dict[str, int] = field(init=False)
    protected_ids: frozenset[int] = field(init=False)
    _by_first: dict[str, list[str]] = field(init=False)
    _token_memo: TokenMemo = field(init=False, default_factory=TokenMemo)

    def __post_init__(self) -> None:
        info = self.engine.info
        self.protected = info.protected_tokens()
        self.protected_ids = frozenset(self.protected.values())
        by_first: dict[str, list[str]] = {}
        for text in self.protected:
            if text:
                by_first.setdefault(text[0], []).append(text)
        for texts in by_first.values():
            texts.sort(key=len, reverse=True)
        self._by_first = by_first

    @property
    def bos_id(self) -> int | None:
        return self.engine.info.bos_id

    def has(self, text: str) -> bool:
        return text in self.engine.info.special_tokens

    def id(self, text: str) -> int:
        """The id of special token ``text``; a clear error if the model lacks it."""
        tid = self.engine.info.special_tokens.get(text)
        if tid is None:
            raise ModelFormatError(f"the model's vocabulary has no {text} token")
        return tid

    def raw(self, text: str) -> list[int]:
        """Tokenize text in which special-token spellings SHOULD become tokens (raw prompts)."""
        return self.engine.tokenize(text, parse_special=True)

    def plain(self, text: str) -> list[int]:
        """Tokenize user text; no id in the result is a protected (special) token."""
        if len(text) < MEMO_MIN_CHARS:
            return self._plain(text)
        if (known := self._token_memo.get(text)) is not None:
            return list(known)
        ids = self._plain(text)
        self._token_memo.put(text, ids)
        return ids

    def _plain(self, text: str) -> list[int]:
        if not text:
            return []
        ids = self.engine.tokenize(text, parse_special=False)
        if not self.protected_ids.intersection(ids):
            return ids
        out: list[int] = []
        for piece, is_special in self._split(text):
            if is_special:
                # "<|x|>" -> "<" + "|x|>": neither half can be the token.
                out.extend(self._checked(piece[:1]))
                out.extend(self.plain(piece[1:]))
            else:
                out.extend(self._checked(piece))
        return out

    def _checked(self, text: str) -> list[int]:
        ids = self.engine.tokenize(text, parse_special=False) if text else []
        if self.protected_ids.intersection(ids):
            # Last resort, for vocabularies that match protected tokens inside a piece:
            # one character at a time can never spell a multi-character token.
            ids = [t for ch in text for t in self.engine.tokenize(ch, parse_special=False)]
        return ids

    def _split(self, text: str) -> list[tuple[str, bool]]:
        parts: list[tuple[str, bool]] = []
        start = i = 0
        n = len(text)
        while i < n:
            cands = self._by_first.get(text[i])
            hit = next((c for c in cands if text.startswith(c, i)), None) if cands else None
            if hit:
                if start < i:
                    parts.append((text[start:i], False))
                parts.append((hit, True))
                i += len(hit)
                start = i
            else:
                i += 1
        if start < n:
            parts.append((text[start:], False))
        return parts

    def render(self, tokens: list[int]) -> str:
        """Prompt text as the model sees it, special tokens spelled out."""
        return b"".join(self.engine.piece(t, special=True) for t in tokens).decode("utf-8", errors="replace")
