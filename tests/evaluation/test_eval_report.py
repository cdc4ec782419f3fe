"""The paper table and the report: same columns for every run, partial runs said to be partial."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.evaluation.datasets import get_tasks
from cgstudio.evaluation.paper import BENCHMARKS, PAPER_MODELS, paper_block, paper_model
from cgstudio.evaluation.report import render_markdown, summary_doc, wilson_interval, write_report
from cgstudio.evaluation.runner import run_eval
from cgstudio.evaluation.sandbox import containment


@pytest.mark.parametrize(
    ("name", "variant", "key"),
    [
        ("codegemma-2b-Q4_K_M.gguf", "pretrained", "codegemma-2b"),
        ("CodeGemma 7b codegemma-7b.Q8_0.gguf", "pretrained", "codegemma-7b"),
        ("codegemma-7b-it-Q4_K_M.gguf", "unknown", "codegemma-7b-it"),
        ("google_codegemma-7b.gguf", "instruction-tuned", "codegemma-7b-it"),
        ("codegemma-1.1-2b-Q4_K_M.gguf", "pretrained", "codegemma-1.1-2b"),
        ("codegemma-1.1-7b-it.Q6_K.gguf", "instruction-tuned", "codegemma-1.1-7b-it"),
        ("codegemma-1.1-7b.gguf", "pretrained", None),  # no 1.1 7B pretrained release
        ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "instruction-tuned", None),
        ("gemma-2b.gguf", "pretrained", None),
    ],
)
def test_paper_model_from_names(name: str, variant: str, key: str | None) -> None:
    assert paper_model(name, variant) == key


def test_paper_table_has_every_figure_once() -> None:
    assert {b: BENCHMARKS[b].n_tasks for b in BENCHMARKS} == {
        "humaneval": 164,
        "infill-single": 1033,
        "infill-multi": 5815,
    }
    assert BENCHMARKS["humaneval"].pass_at_1["codegemma-1.1-7b-it"] == 60.4
    assert BENCHMARKS["infill-multi"].pass_at_1["codegemma-7b-it"] == 20.05
    block = paper_block("infill-single", "codegemma-2b")
    assert block["this_model_pass_at_1"] == pytest.approx(0.7841) and block["n_tasks"] == 1033


def test_wilson_interval() -> None:
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _summary(n: int, model: str = "canonical", paper: str | None = None) -> dict:
    result = run_eval("infill-single", get_tasks("infill-single")[:n], None)
    return summary_doc(
        result,
        model=model,
        model_info={"name": model},
        paper_model=paper,
        settings={"protocol_version": 1, "timeout_s": 10.0},
        selection={"limit": n, "sample": None, "sample_seed": None, "of": 1033},
        extra={"isolation": "none"},
    )


def test_report_puts_ours_beside_every_paper_column(tmp_path: Path) -> None:
    summary = _summary(3, model="codegemma-2b", paper="codegemma-2b")
    assert summary["complete"] is False and summary["pass_at_1"] == 1.0
    text = render_markdown(summary)
    header = next(line for line in text.splitlines() if line.startswith("| Benchmark"))
    assert header.count("|") == 3 + len(PAPER_MODELS) + 1
    row = "| HumanEval single-line infilling | 3 of 1033 (first 3) | 100.00 | 78.41 | 76.09 | 68.25 | — | — |"
    assert row in text
    assert "Partial run: 3 of 1033 tasks" in text
    assert "paper 78.41, this run 100.00 (+21.59 pts)" in text
    path = write_report(tmp_path / "out", summary, [])
    assert path.read_text() == text
    assert (tmp_path / "out" / "summary.json").is_file() and (tmp_path / "out" / "results.jsonl").is_file()


def test_report_says_what_contained_the_tests() -> None:
    summary = _summary(1)
    summary["containment"] = containment("none")
    text = render_markdown(summary)
    assert "- Containment: file system host file system; network host network;" in text
    assert "**Sandbox weaker than root-drop with a cgroup:** no namespaces" in text
    assert "passes only if `check` returned" in text
    kind = summary["memory_containment"]
    assert sum(kind.values()) == 1 and set(kind) <= {"cgroup-v2", "cgroup-v1", "rlimit"}
    assert f"- Memory bound per test, as applied: {next(iter(kind))} 1." in text
