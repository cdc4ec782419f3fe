"""Token healing for the llama.cpp engine: which tokens may come first, and the mask that says so.

``DecodeRequest.starts_with`` asks for a first token whose text starts with the healed text. The
model's vocabulary is indexed once (every token's text, sorted), so the allowed ids are one
binary search away; the mask is llama.cpp's logit-bias sampler with every other id at -inf, put
first in the chain for the first token only (``sampler.SamplerChain``).
"""

from __future__ import annotations

import bisect
import ctypes
import threading
import weakref
from typing import Any

import llama_cpp as lc
import numpy as np

from cgstudio.core.errors import InvalidInputError
from cgstudio.engine.llamacpp.handle import ModelHandle

_BIAS = np.dtype([("token", np.int32), ("bias", np.float32)])


class PieceIndex:
    """Every ordinary token's text (bytes), sorted, for prefix queries. Control tokens and the
    model's protected special tokens are left out: healing never starts a reply with markup."""

    def __init__(self, model: ModelHandle, excluded: frozenset[int]) -> None:
        n_vocab = lc.llama_vocab_n_tokens(model.vocab)
        pairs = []
        self.pieces: dict[int, bytes] = {}
        self._exact: dict[bytes, list[int]] = {}
        for tok in range(n_vocab):
            if tok in excluded:
                continue
            piece = model.piece(tok, special=False)  # empty for control tokens
            if piece:
                pairs.append((piece, tok))
                self.pieces[tok] = piece
                self._exact.setdefault(piece, []).append(tok)
        pairs.sort()
        self.n_vocab = n_vocab
        self._sorted = [p for p, _ in pairs]
        self._ids = [t for _, t in pairs]

    def allowed(self, rest: bytes) -> list[int]:
        """The ids that may come next while ``rest`` of the healed text is still owed: those whose
        text starts with it (the token taken off is one), and those whose text is a proper start
        of it (the prompt's own tokenization: ``"       "`` before ``" total"``)."""
        lo = bisect.bisect_left(self._sorted, rest)
        hi = lo
        while hi < len(self._sorted) and self._sorted[hi].startswith(rest):
            hi += 1
        shorter = [t for k in range(1, len(rest)) for t in self._exact.get(rest[:k], ())]
        return [*self._ids[lo:hi], *shorter]


_INDEXES: weakref.WeakKeyDictionary[ModelHandle, PieceIndex] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def piece_index(model: ModelHandle, excluded: frozenset[int]) -> PieceIndex:
    """The model's index, built on first use (about 0.5 s for a 150k-token vocabulary): the engine
    builds it in the caller's thread, before a healed request reaches the decode thread."""
    with _LOCK:
        index = _INDEXES.get(model)
        if index is None:
            index = _INDEXES[model] = PieceIndex(model, excluded)
        return index


def built_index(model: ModelHandle) -> PieceIndex:
    """The index ``piece_index`` built for ``model`` (the decode thread never builds one)."""
    with _LOCK:
        index = _INDEXES.get(model)
    if index is None:
        raise InvalidInputError("token healing needs the engine's token index; send the request again")
    return index


class Healer:
    """One sequence's healing: the healed text still owed, and the mask for its next token."""

    def __init__(self, index: PieceIndex, text: str) -> None:
        self.index = index
        self.rest = text.encode("utf-8")

    def mask(self) -> Any:
        """llama.cpp's logit-bias sampler that leaves only ``PieceIndex.allowed`` ids."""
        allowed = self.index.allowed(self.rest)
        if not allowed:
            raise InvalidInputError(
                f"no token of this model starts with {self.rest!r}; turn fim_token_healing off"
            )
        banned = np.ones(self.index.n_vocab, dtype=bool)
        banned[allowed] = False
        ids = np.flatnonzero(banned)
        biases = np.empty(len(ids), dtype=_BIAS)
        biases["token"] = ids
        biases["bias"] = -np.inf
        ptr = biases.ctypes.data_as(ctypes.POINTER(lc.llama_logit_bias))
        return lc.llama_sampler_init_logit_bias(self.index.n_vocab, len(ids), ptr)  # copies the array

    def advance(self, tok: int) -> None:
        """``tok`` was sampled: what of the healed text it did not cover is still owed."""
        piece = self.index.pieces.get(tok, b"")
        self.rest = b"" if piece.startswith(self.rest) else self.rest[len(piece) :]
