"""``LlamaCppEngine``: the in-process llama.cpp backend behind the ``Engine`` contract."""

from __future__ import annotations

import atexit
import weakref
from pathlib import Path

from cgstudio.core.engine import DecodeRequest, Engine, EngineCounters, ModelInfo, TokenKind, TokenStream
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp.handle import ContextHandle, ModelHandle
from cgstudio.engine.llamacpp.healing import piece_index
from cgstudio.engine.llamacpp.scheduler import Scheduler


def inspect_model(path: str | Path) -> ModelInfo:
    """Read metadata and vocabulary without loading weights (fast, any size)."""
    handle = ModelHandle(Path(path), LoadProfile(), vocab_only=True)
    try:
        return handle.model_info()
    finally:
        handle.close()


# Schedulers still running at interpreter exit. A scheduler's daemon thread may be inside
# llama_decode (its consumer stopped early, e.g. on a repetition stop, and the engine object is
# already gone: the thread holds the scheduler, not the engine). Native teardown under it
# crashes the process, so exit first stops each scheduler, then frees its context and model.
_LIVE: weakref.WeakSet[Scheduler] = weakref.WeakSet()


def _release(scheduler: Scheduler) -> None:
    """Stop the decode thread, then free the context and the model, in that order."""
    _LIVE.discard(scheduler)
    scheduler.close()
    scheduler.context.close()
    scheduler.model.close()


@atexit.register
def _close_live_schedulers() -> None:
    for scheduler in list(_LIVE):
        _release(scheduler)


class LlamaCppEngine(Engine):
    def __init__(self, path: str | Path, profile: LoadProfile | None = None) -> None:
        self.profile = profile or LoadProfile()
        self._model = ModelHandle(Path(path), self.profile)
        self.info = self._model.model_info()
        self._context = ContextHandle(self._model, self.profile)
        self.n_ctx = self._context.n_ctx_seq
        self.counters = EngineCounters()
        self._scheduler = Scheduler(
            self._model,
            self._context,
            self.counters,
            n_parallel=self.profile.n_parallel,
            reuse_min=self.profile.cache_reuse,
            shift_reuse=self.profile.kv_shift_reuse,
            speculative=self.profile.speculative,
        )
        self._kind_cache: dict[int, TokenKind] = {}
        _LIVE.add(self._scheduler)
        if any("fim" in t.lower() for t in self.info.special_tokens):
            # A FIM model's editor requests use token healing: its index (about 0.5 s for a 150k
            # vocabulary) is built with the model, not on the first keystroke.
            piece_index(self._model, frozenset(self.info.protected_tokens().values()))

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        return self._model.tokenize(text.encode("utf-8"), parse_special=parse_special)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return self._model.piece(token, special=special)

    def token_kind(self, token: int) -> TokenKind:
        kind = self.info.special_kinds.get(token)
        return kind if kind is not None else self._model.token_kind(token)

    def stream(self, request: DecodeRequest) -> TokenStream:
        self._index_for(request)
        return self._scheduler.submit(request)

    @property
    def forces_start(self) -> bool:
        return True

    def _index_for(self, request: DecodeRequest) -> None:
        """A healed request's token index, built here (the caller's thread), not in the decode loop."""
        if request.starts_with:
            piece_index(self._model, frozenset(self.info.protected_tokens().values()))

    @property
    def max_choices(self) -> int:
        return self._scheduler.max_choices  # one sequence slot per choice (--parallel)

    @property
    def shares_prompt(self) -> bool:
        return True

    def stream_choices(self, request: DecodeRequest) -> list[TokenStream]:
        """One prompt evaluation, its KV cells shared by ``request.n`` sequences (see scheduler)."""
        self._index_for(request)
        return self._scheduler.submit_choices(request)

    def close(self) -> None:
        _release(self._scheduler)
