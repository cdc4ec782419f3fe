"""One decoding sequence: its request, where it stands, and the stream its consumer reads."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from cgstudio.core.engine import DecodeRequest, DecodeStats, TokenStream
from cgstudio.core.errors import CGStudioError
from cgstudio.engine.llamacpp.kvcache import Slot


class DecodeError(CGStudioError):
    code = "decode_failed"


class Sampler(Protocol):
    """A sequence's native sampler chain (the scheduler builds it for the request)."""

    def accept(self, tokens: list[int]) -> None: ...

    def sample(self, ctx: object, idx: int) -> int: ...

    def free(self) -> None: ...


@dataclass
class Seq:
    req: DecodeRequest
    stats: DecodeStats
    out: queue.SimpleQueue[object]
    closed: threading.Event
    t_submit: float
    slot: Slot | None = None
    sampler: Sampler | None = None
    todo: list[tuple[int, int]] = field(default_factory=list)  # prompt (token, position) left to evaluate
    t_prefill: float = 0.0
    pending: int | None = None  # sampled, emitted, not yet in the KV cache
    draft: list[int] = field(default_factory=list)
    speculate: bool = False
    history: list[int] = field(default_factory=list)  # prompt + output, for n-gram lookup
    followers: list[Seq] = field(default_factory=list)  # choices 1..n-1 waiting for this prompt
    leader: Seq | None = None  # a follower: the choice whose prompt evaluation it waits for
    sat_out: int = 0  # decode steps in a row its generation sat out for a keystroke (batching.yields)


class SeqStream(TokenStream):
    """A sequence's token stream. Closing it frees the sequence even when it was never read
    (a choice whose consumer stopped before reaching it)."""

    def __init__(self, gen: Iterator[int], seq: Seq, release: Callable[[Seq], None]) -> None:
        super().__init__(gen, seq.stats)
        self._seq = seq
        self._release = release

    def close(self) -> None:
        super().close()
        self._release(self._seq)


def put_token(b: Any, i: int, tok: int, pos: int, seq_id: int, logits: bool) -> None:
    """Row ``i`` of llama_batch ``b``: ``tok`` at ``pos`` in sequence ``seq_id``."""
    b.token[i] = tok
    b.pos[i] = pos
    b.n_seq_id[i] = 1
    b.seq_id[i][0] = seq_id
    b.logits[i] = logits
