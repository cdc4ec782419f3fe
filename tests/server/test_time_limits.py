"""llama.cpp's t_max_prompt_ms and t_max_predict_ms on /infill, on a tiny synthetic CodeGemma.

The decode thread's clock is replaced by one that moves a second per reading, so "the prompt took
too long" is decided by step counts, not by this machine's speed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from server_testing import Live, LiveFactory, script_text

from cgstudio.engine.llamacpp import scheduler
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf


class SlowClock:
    """``time`` for the scheduler: every reading is a second after the last."""

    def __init__(self) -> None:
        self.t = 0.0

    def perf_counter(self) -> float:
        self.t += 1.0
        return self.t


@pytest.fixture(scope="module")
def live(live_server: LiveFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    path = write_codegemma_gguf(tmp_path_factory.mktemp("limits") / "codegemma-2b.gguf")
    with live_server({"cg": path}, n_ctx=4096) as lv:
        yield lv


def _infill(live: Live, **body: Any) -> httpx.Response:
    return httpx.post(live.url + "/infill", json={"n_predict": 8, "temperature": 0, **body}, timeout=120)


def test_a_prompt_over_its_budget_ends_before_generating(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = script_text(150, seed=1)  # a prompt of several 512-token batches
    monkeypatch.setattr(scheduler, "time", SlowClock())
    whole = {"fim_prefix_tokens": 0}  # the whole prefix: no 384-token window
    r = _infill(live, input_prefix=prefix, input_suffix="\n", t_max_prompt_ms=500, guards=whole)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["stop_type"] == "limit" and doc["content"] == "" and doc["tokens_predicted"] == 0
    assert "prompt_time_limit" in [w["code"] for w in doc["warnings"]]
    assert 0 < doc["timings"]["prompt_n"] < doc["tokens_evaluated"]  # stopped after one batch
    # The evaluated part stayed cached: without a budget the same request starts after it.
    again = _infill(live, input_prefix=prefix, input_suffix="\n", guards=whole).json()
    assert again["tokens_cached"] >= doc["timings"]["prompt_n"]
    assert again["stop_type"] != "limit"


def test_a_prewarm_is_all_prompt_and_has_no_budget(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduler, "time", SlowClock())
    # llama.vim's ring-buffer pre-warm sends t_max_prompt_ms 1 (autoload/llama.vim).
    extra = [{"filename": "ring.py", "text": script_text(60, seed=2)}]
    r = _infill(live, input_extra=extra, n_predict=0, t_max_prompt_ms=1, t_max_predict_ms=1)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["tokens_evaluated"] > 512  # more than one batch: a budget would have cut it
    assert doc["stop_type"] != "limit"
    assert doc["timings"]["prompt_n"] + doc["tokens_cached"] == doc["tokens_evaluated"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("t_max_prompt_ms", -2),
        ("t_max_prompt_ms", 1.5),
        ("t_max_prompt_ms", "500"),
        ("t_max_predict_ms", True),
        ("t_max_predict_ms", 10**12),
    ],
)
def test_bad_limits_are_400s_that_name_the_field(live: Live, field: str, value: object) -> None:
    r = _infill(live, input_prefix="def f(", **{field: value})
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]["message"]


def test_minus_one_and_zero_mean_no_limit(live: Live) -> None:
    for value in (-1, 0):
        r = _infill(live, input_prefix="def f(", t_max_prompt_ms=value, t_max_predict_ms=value)
        assert r.status_code == 200, r.text
        assert r.json()["stop_type"] != "limit"
