"""Targets are floors, or ceilings for the figures where lower is better (latencies)."""

from __future__ import annotations

from cgstudio.bench.context import BenchContext, Plan
from cgstudio.bench.report import markdown
from cgstudio.bench.stats import Ratio, summarize
from cgstudio.core.settings import LoadProfile


def test_a_floor_is_met_above_it_and_a_ceiling_below_it() -> None:
    def verdict(values: list[float], lower: bool) -> str:
        return Ratio("r", summarize(values), 2.0, lower).verdict()

    assert [verdict(v, False) for v in ([2.0, 3.0], [1.0, 1.5], [1.0, 3.0])] == [
        "met",
        "missed",
        "within spread",
    ]
    assert [verdict(v, True) for v in ([1.0, 2.0], [2.5, 3.0], [1.0, 3.0])] == [
        "met",
        "missed",
        "within spread",
    ]
    assert Ratio("r", summarize([1.0]), None).verdict() == "n/a"


def test_the_context_marks_latency_figures_as_ceilings_and_the_report_says_so() -> None:
    bc = BenchContext(None, LoadProfile(), Plan.make(quick=True), progress=lambda _: None)  # type: ignore[arg-type]
    bc.record_values("typed_ahead_hit_ms_p50", [1.5, 2.5, 3.0])
    bc.record_ratio("keystroke_p95_over_decode_step", [30.0], [1.0])
    bc.record_values("keystroke_agreement_vs_cold", [1.0])
    assert bc.ratios["typed_ahead_hit_ms_p50"].as_dict()["verdict"] == "met"
    assert bc.ratios["keystroke_p95_over_decode_step"].verdict() == "missed"
    assert bc.ratios["keystroke_agreement_vs_cold"].as_dict()["lower_is_better"] is False
    doc = {
        "machine": {
            "cpu": "x",
            "cores": 2,
            "memory_gib": 1,
            "platform": "p",
            "llama_cpp_python": "0",
            "python": "3",
        },
        "model": "m",
        "profile": "defaults",
        "quick": True,
        "wall_s": 1.0,
        "peak_rss_mib": 1.0,
        "results": {},
    }
    text = markdown(doc, bc.ratios, [], "cgstudio bench")
    assert "| `typed_ahead_hit_ms_p50` | 2.50 [1.50–3.00] (n=3) | ≤ 5.0 | met |" in text
    assert "| `keystroke_p95_over_decode_step` | 30.00 [30.00–30.00] (n=1) | ≤ 2.0 | missed |" in text
    assert "| `keystroke_agreement_vs_cold` | 1.00 [1.00–1.00] (n=1) | ≥ 1.0 | met |" in text
