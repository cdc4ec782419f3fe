"""The bench's typed-ahead figure: only answers the server marks ``typed_ahead`` count as hits."""

from __future__ import annotations

from pathlib import Path

import httpx

from cgstudio.bench.http import serve
from cgstudio.bench.typed_ahead import Answer, http_post, measure, stop_inside
from cgstudio.core.settings import LoadProfile
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf


def test_only_typed_ahead_answers_are_hits() -> None:
    """A scripted server: the ghost comes from the engine; of the typed requests, the first two are
    answered typed-ahead, the third by the engine (a miss, e.g. the ghost was forgotten)."""
    sent: list[tuple[str, list[str]]] = []

    def post(prefix: str, suffix: str, stop: list[str]) -> Answer:
        sent.append((prefix, stop))
        typed = len(prefix) - len("def f(")
        if typed == 0 and not stop:
            return Answer("x, y):\n    return x", "length", "engine", 900.0)
        if typed == 0:
            return Answer("x, y):", "stop", "engine", 800.0)
        source = "typed_ahead" if typed < 3 else "engine"
        return Answer("x, y):"[typed:], "stop", source, {1: 2.0, 2: 4.0}.get(typed, 700.0))

    run = measure(post, [("def f(", "\n")], max_typed=3)
    assert run.hit_ms == [2.0, 4.0] and run.miss_ms == [700.0] and run.ghost_ms == [800.0]
    assert run.ghosts == 1 and run.cursors_skipped == 0
    # The ghost was made with a stop found in the first answer; every typed request sends it too.
    assert [p for p, _ in sent] == ["def f(", "def f(", "def f(x", "def f(x,", "def f(x, "]
    assert all(stop == ["\n"] for _, stop in sent[1:])


def test_a_cursor_without_a_ghost_that_ends_on_its_own_is_skipped() -> None:
    run = measure(lambda p, s, stop: Answer("ab", "length", "engine", 1.0), [("x", "")])
    assert run.cursors_skipped == 1 and not run.hit_ms and not run.miss_ms
    assert stop_inside("abcabcd") == "cab" and stop_inside("ab\ncd") == "\n" and stop_inside("abc") is None


def test_typed_ahead_through_the_server(tmp_path: Path) -> None:
    """The real server on a synthetic CodeGemma: the typed requests are answered typed-ahead (with
    typed-ahead off in the server, every one would be a miss)."""
    path = write_codegemma_gguf(tmp_path / "codegemma-2b.gguf", weight_scale=0.5)
    prefix = "def mean(values):\n    if not values:\n        return 0.0\n    "
    suffix = "\n    return total / len(values)\n"
    with (
        serve("cgstudio", path, LoadProfile(n_ctx=512, n_threads=1), tmp_path / "logs") as server,
        httpx.Client(base_url=server.base_url, timeout=120) as client,
    ):
        run = measure(http_post(client), [(prefix, suffix)], max_typed=3)
    assert run.ghosts == 1
    assert run.hit_ms and not run.miss_ms  # each typed character of the ghost text: a hit
