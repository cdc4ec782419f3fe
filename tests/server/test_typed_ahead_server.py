"""Typed-ahead through the server, on a tiny synthetic CodeGemma: a keystroke that types the start
of the last ghost text is answered from the rest of it, and the engine's counters do not move."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_testing import Live, LiveFactory

from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

PREFIX = "def mean(values):\n    if not values:\n        return 0.0\n    "
SUFFIX = "\n    return total / len(values)\n"
CLIENT = {"X-Client-Id": "editor-1"}


@pytest.fixture(scope="module")
def live(live_server: LiveFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    # Weights large enough that answers are not empty (at the default scale the model ends at once).
    path = write_codegemma_gguf(tmp_path_factory.mktemp("ahead") / "codegemma-2b.gguf", weight_scale=0.5)
    with live_server({"cg": path}, n_ctx=512) as lv:
        yield lv


def _complete(live: Live, prompt: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "cg", "prompt": prompt, "suffix": SUFFIX, "max_tokens": 12, "temperature": 0, **extra}
    r = httpx.post(live.url + "/v1/completions", json=body, headers=CLIENT, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def _counters(live: Live) -> tuple[int, int, int]:
    live.settled()
    c = live.engine("cg").counters
    return int(c.evaluated_tokens), int(c.generated_tokens), int(c.decode_calls)


def test_typing_the_ghost_text_is_answered_without_the_engine(live: Live) -> None:
    probe = _complete(live, PREFIX)["choices"][0]["text"]
    # A stop string inside the probe's text: the ghost text then ends on its own ("stop").
    k = next(k for k in range(4, len(probe) - 2) if probe.find(probe[k : k + 3]) == k)
    same = {"stop": [probe[k : k + 3]]}
    first = _complete(live, PREFIX, **same)
    ghost = first["choices"][0]["text"]
    assert ghost == probe[:k] and first["choices"][0]["finish_reason"] == "stop"
    assert first["timings"]["source"] == "engine"

    before = _counters(live)
    for typed in (1, 2, 3):  # the user types the ghost text, one character at a time
        r = _complete(live, PREFIX + ghost[:typed], **same)
        assert r["choices"][0]["text"] == ghost[typed:]
        assert r["choices"][0]["finish_reason"] == "stop"
        assert r["timings"]["source"] == "typed_ahead"
        assert r["timings"]["prompt_tokens_evaluated"] == 0
    assert _counters(live) == before  # no token evaluated or generated, no decode call

    # Anything else goes to the engine: another character, another suffix, other sampling.
    _complete(live, PREFIX + ghost[:3] + "#", **same)
    after_other_char = _counters(live)
    assert after_other_char[0] > before[0]
    for extra in ({"suffix": SUFFIX + "\n"}, {"temperature": 0.5, "seed": 1}):
        r = _complete(live, PREFIX + ghost[:1], **{**same, **extra})
        assert r["timings"]["source"] == "engine"


def test_a_ghost_cut_by_max_tokens_is_not_reused(live: Live) -> None:
    cut = _complete(live, PREFIX + "x")
    assert cut["choices"][0]["finish_reason"] == "length"
    r = _complete(live, PREFIX + "x" + cut["choices"][0]["text"][:1])
    assert r["timings"]["source"] == "engine"
