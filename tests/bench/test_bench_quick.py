"""``cgstudio bench --quick`` end to end on the real demo model: every ratio measured in one run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cgstudio.bench.traces import EXACT_REUSE, NO_SUFFIX, TRACE_NAMES

pytestmark = pytest.mark.slow

RATIOS = {
    "decode_vs_raw_llama_cpp",
    "decode_default_vs_raw_llama_cpp",
    "http_stream_vs_raw_llama_cpp",
    "http_stream_vs_llama_cpp_server",
    "keystroke_ttft_speedup",
    "keystroke_agreement_vs_cold",
    "keystroke_bare_vs_context_ttft",
    "keystroke_p95_over_decode_step",
    "keystroke_p95_over_decode_step_no_suffix",
    "typed_ahead_hit_ms_p50",
    "concurrency_4_vs_1_throughput",
    "speculation_speedup",
    "fim_p95_with_chat_over_without",
}


def test_quick_bench_reports_every_ratio_and_writes_the_report(qwen_path: Path, tmp_path: Path) -> None:
    report = tmp_path / "BENCH.md"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cgstudio.cli.main",
            "bench",
            "-m",
            str(qwen_path),
            "--quick",
            "--json",
            "--report",
            str(report),
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)  # stdout carries only the document; progress went to stderr
    assert set(doc["ratios"]) == RATIOS
    for key, ratio in doc["ratios"].items():
        assert ratio["n"] >= 1 and 0 <= ratio["min"] <= ratio["median"] <= ratio["max"], key
        assert ratio["verdict"] in ("met", "missed", "within spread"), key
    res = doc["results"]
    # The typing traces. Default reuse keeps the exact prefix up to the cursor and evaluates the
    # suffix again: on the traces that edit at the cursor, fewer tokens than the prompt.
    rows = {r["trace"]: r for r in res["keystroke"]}
    assert list(rows) == list(TRACE_NAMES)
    for name in EXACT_REUSE:
        # ~600-token files seen through the editor's windows: up to 384 prefix tokens (kept in place
        # while typing, up to twice that), up to 128 suffix tokens.
        assert rows[name]["prompt_tokens"] > 300, name
        assert 0 < rows[name]["evaluated_per_step"]["max"] < rows[name]["prompt_tokens"] - 100, name
    for name in NO_SUFFIX:  # nothing after the cursor: a keystroke evaluates only what changed
        assert rows[name]["prompt_tokens"] > 300 and rows[name]["evaluated_per_step"]["max"] <= 8, name
    # Agreement is a share of steps per trace; exact reuse differs from cold only where llama.cpp
    # rounds a near-tie differently, so most steps must agree.
    agreement = doc["ratios"]["keystroke_agreement_vs_cold"]
    assert agreement["n"] == len(TRACE_NAMES) and agreement["median"] >= 0.5
    p95 = doc["ratios"]["keystroke_p95_over_decode_step"]
    assert p95["n"] == len(EXACT_REUSE) and p95["lower_is_better"] is True and p95["target"] == 2.0
    assert doc["ratios"]["keystroke_p95_over_decode_step_no_suffix"]["n"] == len(NO_SUFFIX)
    ahead = doc["ratios"]["typed_ahead_hit_ms_p50"]
    assert ahead["lower_is_better"] is True and res["typed_ahead"]["typed_but_engine_ms"]["n"] == 0
    assert res["speculation"]["same_output"] is True
    assert res["decode"]["same_token_count_as_raw"] is True
    assert doc["ratios"]["keystroke_ttft_speedup"]["median"] > 1.3  # the prefix up to the cursor is reused
    text = report.read_text()
    assert "## Ratios" in text and "concurrency_4_vs_1_throughput" in text
    assert "| ≤ 2.0 |" in text and "| ≤ 5.0 |" in text  # lower-is-better targets read as ceilings
    assert (tmp_path / "bench_ttft.png").stat().st_size > 1000
    assert (tmp_path / "bench_concurrency.png").stat().st_size > 1000
