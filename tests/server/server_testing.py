"""Server test helpers: settings, the live-server handle and a wrapping test engine.

The server itself runs with ``cgstudio.testing.loopback.serve_app`` (conftest.py)."""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI

from cgstudio.core.engine import DecodeRequest, DecodeStats, Engine, Priority, TokenKind, TokenStream
from cgstudio.core.settings import Settings, load_settings

API_KEY = "test-key-123"
WORDS = [
    "alpha",
    "beta",
    "count",
    "delta",
    "emit",
    "frame",
    "gamma",
    "hash",
    "index",
    "join",
    "key",
    "lines",
    "merge",
    "node",
    "offset",
    "parse",
    "query",
    "rows",
    "split",
    "total",
    "value",
    "width",
]


def script_text(n_lines: int = 400, seed: int = 0) -> str:
    """Varied code-like lines: no loop the repetition guard would stop."""
    rng = random.Random(seed)
    return "".join(
        f"{rng.choice(WORDS)}_{rng.choice(WORDS)} = {rng.choice(WORDS)}({rng.choice(WORDS)}, {i})\n"
        for i in range(n_lines)
    )


class TestEngine(Engine):
    """A real (synthetic GGUF) engine for vocabulary and prompts that records each decode request.

    With ``delay_s`` decoding is replaced by a scripted stream: one varied token every
    ``delay_s`` seconds up to max_tokens, checking cancel between tokens as llama.cpp's scheduler
    does. With ``fail`` every stream raises it.
    """

    __test__ = False

    def __init__(
        self, inner: Engine, *, delay_s: float | None = None, fail: BaseException | None = None
    ) -> None:
        self.inner = inner
        self.info = inner.info
        self.n_ctx = inner.n_ctx
        self.counters = inner.counters
        self.delay_s = delay_s
        self.fail = fail
        self.requests: list[list[int]] = []
        self.priorities: list[Priority] = []  # each request's, in the same order
        self._script = [t for t in inner.tokenize(script_text()) if t not in inner.info.special_kinds]

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        return self.inner.tokenize(text, parse_special=parse_special)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return self.inner.piece(token, special=special)

    def token_kind(self, token: int) -> TokenKind:
        return self.inner.token_kind(token)

    def stream(self, request: DecodeRequest) -> TokenStream:
        self.requests.append(list(request.tokens))
        self.priorities.append(request.priority)
        if self.fail is not None:
            raise self.fail
        if self.delay_s is None:
            return self.inner.stream(request)
        stats = DecodeStats(
            n_prompt=len(request.tokens), n_prompt_evaluated=len(request.tokens), prompt_eval_s=0.001
        )
        return TokenStream(self._slow(request, stats), stats)

    @property
    def max_choices(self) -> int:
        return self.inner.max_choices

    def stream_choices(self, request: DecodeRequest) -> list[TokenStream]:
        if self.delay_s is not None or self.fail is not None:
            return Engine.stream_choices(self, request)  # one scripted stream per choice
        self.requests.append(list(request.tokens))
        self.priorities.append(request.priority)
        return self.inner.stream_choices(request)

    def _slow(self, request: DecodeRequest, stats: DecodeStats) -> Iterator[int]:
        self.counters.evaluated_tokens += len(request.tokens)
        for i in range(request.max_tokens):
            if request.cancel is not None and request.cancel.is_set():
                stats.finish = "cancelled"
                return
            time.sleep(self.delay_s or 0)
            stats.n_generated += 1
            self.counters.generated_tokens += 1
            yield self._script[i % len(self._script)]
        stats.finish = "max_tokens"

    def close(self) -> None:
        self.inner.close()


def isolated_settings(**load: Any) -> Settings:
    """Settings from defaults only (module fixtures run before the autouse environment isolation)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("CGSTUDIO_"):
                mp.delenv(key)
        mp.setenv("CGSTUDIO_PROFILE", "/nonexistent/cgstudio-profile.toml")
        return load_settings({"load": load})


@dataclass
class Live:
    url: str
    app: FastAPI

    def engine(self, alias: str) -> Any:
        model = self.app.state.registry.entries[alias].model
        assert model is not None, f"{alias} is not loaded"
        return model.engine

    def settled(self, timeout_s: float = 30.0) -> None:
        """Wait until no job is in flight: a response can reach the client before its worker has
        finished (e.g. the last sampled token is decoded into the KV for the next request); nor a
        speculative next completion (server/speculate.py), which starts once the server is idle."""
        deadline = time.monotonic() + timeout_s
        runner = self.app.state.runner
        while runner.inflight or runner.speculator.busy or self._engines_busy():
            assert time.monotonic() < deadline, "a job stayed in flight"
            time.sleep(0.01)

    def _engines_busy(self) -> bool:
        """A loaded engine still has a sequence (a stream its consumer closed ends at the
        scheduler's next step, which may decode once more) or a queued request."""
        for entry in self.app.state.registry.entries.values():
            counters = getattr(getattr(entry.model, "engine", None), "counters", None)
            if counters is not None and (counters.active_sequences or counters.queued_requests):
                return True
        return False


LiveFactory = Callable[..., contextlib.AbstractContextManager[Live]]
