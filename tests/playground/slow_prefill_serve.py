"""``cgstudio`` whose llama.cpp engine holds back each request's first token for SLOW_PREFILL_S seconds.

    SLOW_PREFILL_S=2 python tests/playground/slow_prefill_serve.py serve -m MODEL ...

A prompt of a few dozen tokens is evaluated in milliseconds on the demo models, too fast for a
browser test to see the studio's "Evaluating prompt (N tokens)…" line. The delay stands in for a
long prompt on a slow machine: it runs where prompt evaluation runs (after the model is loaded and
the prompt built, before the first token), and a cancel ends it early. Everything else is the
real server and the real models.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

from cgstudio.cli.main import main
from cgstudio.core.engine import DecodeRequest, Piece, TokenStream
from cgstudio.engine.llamacpp import LlamaCppEngine

DELAY_S = float(os.environ.get("SLOW_PREFILL_S", "2"))


def held_back(inner: TokenStream, cancel: threading.Event | None) -> TokenStream:
    """``inner`` with its first token ``DELAY_S`` later; closing it closes ``inner``."""

    def gen() -> Iterator[Piece]:
        try:
            (cancel or threading.Event()).wait(DELAY_S)
            yield from inner
        finally:
            inner.close()

    return TokenStream(gen(), inner.stats)


def patch() -> None:
    stream, stream_choices = LlamaCppEngine.stream, LlamaCppEngine.stream_choices

    def slow_stream(self: LlamaCppEngine, request: DecodeRequest) -> TokenStream:
        return held_back(stream(self, request), request.cancel)

    def slow_choices(self: LlamaCppEngine, request: DecodeRequest) -> list[TokenStream]:
        return [held_back(s, request.cancel) for s in stream_choices(self, request)]

    LlamaCppEngine.stream = slow_stream  # type: ignore[method-assign]
    LlamaCppEngine.stream_choices = slow_choices  # type: ignore[method-assign]


if __name__ == "__main__":
    patch()
    sys.exit(main())
