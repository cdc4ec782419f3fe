"""The keystroke section on a tiny synthetic CodeGemma: counters per trace and the ratios it records."""

from __future__ import annotations

from typing import Any

import pytest

from cgstudio.bench import traces as tr
from cgstudio.bench.context import BenchContext, Plan
from cgstudio.bench.sections import keystroke
from cgstudio.core.settings import GuardSettings, LoadProfile
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> BenchContext:
    # Weights large enough that answers are not empty (at the default scale the model ends at once).
    path = write_codegemma_gguf(tmp_path_factory.mktemp("ks") / "codegemma-2b.gguf", weight_scale=0.5)
    bc = BenchContext(path, LoadProfile(n_ctx=4096), Plan.make(quick=True), progress=lambda _: None)
    # Two traces keep the test short: one where exact reuse applies, one where it cannot (one
    # sequence, two files: each switch evaluates the other file's whole prompt).
    chosen = [t for t in tr.typing_traces(quick=True) if t.name in ("enter", "switch")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keystroke.tr, "typing_traces", lambda seed=0, quick=False: chosen)
        keystroke.run(bc)
    return bc


def _row(bc: BenchContext, key: str, name: str) -> dict[str, Any]:
    rows = bc.results[key]
    return next(r for r in rows if name in (r.get("trace"), r.get("kind")))


def test_reuse_steps_evaluate_less_than_the_prompt_and_switches_evaluate_it_all(bench: BenchContext) -> None:
    enter = _row(bench, "keystroke", "enter")
    assert enter["steps"] == "enter×2 accept×2"
    assert enter["prompt_tokens"] > 500 and enter["evaluated_per_step"]["n"] == 4
    # Exact reuse: the prompt up to the cursor came from the cache, the suffix was evaluated again.
    assert 0 < enter["evaluated_per_step"]["max"] < enter["prompt_tokens"] - 100
    switched = _row(bench, "keystroke_by_kind", "switch")["evaluated_per_step"]
    # A switch evaluates the other file's whole prompt: at least its prefix window.
    assert switched["min"] > GuardSettings().fim_prefix_tokens
    accepted = _row(bench, "keystroke_by_kind", "accept")["evaluated_per_step"]
    assert accepted["max"] < switched["min"]


def test_the_section_records_agreement_and_the_p95_over_a_decode_step(bench: BenchContext) -> None:
    agreement = bench.ratios["keystroke_agreement_vs_cold"].as_dict()
    assert agreement["n"] == 2  # one share per trace
    assert all(r["identical_to_cold"] in ("4/4", "5/5", "3/4", "4/5") for r in bench.results["keystroke"])
    # Only the traces where exact reuse applies count: 'enter' here, not 'switch'.
    ratio = bench.ratios["keystroke_p95_over_decode_step"]
    assert ratio.value.n == 1 and ratio.value.median > 0
    assert ratio.lower_is_better and ratio.target == 2.0
    row = _row(bench, "keystroke", "enter")
    assert ratio.value.median == pytest.approx(row["ttft_p95_s"] / (row["decode_step_ms"] / 1000))
    assert "keystroke_bare_vs_context_ttft" in bench.ratios
    assert bench.results["keystroke_context"]["context_tokens"] > 0
