"""The report of ``cgstudio eval repo``: one row per context condition, as Markdown and JSON.

The folder holds ``report.md``, ``results.jsonl`` (one ``RepoRecord`` per task and condition) and
``summary.json`` (the ``--json`` document), as ``cgstudio eval`` writes them (``report.py``).
Rates are fractions in the JSON and percentages in the Markdown.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cgstudio.core.errors import InvalidInputError
from cgstudio.evaluation.repo_run import RepoRecord
from cgstudio.evaluation.report import wilson_interval

TARGET_RATIO = 1.5  # issue 16: repository context raises exact match at least 1.5x over none


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def condition_summary(records: Sequence[RepoRecord]) -> dict[str, Any]:
    """Scores, context tokens and timings of one condition's records."""
    n = len(records)
    exact = sum(r.exact for r in records)
    ttfts = [r.ttft_s for r in records if r.ttft_s is not None]
    covered = [r for r in records if r.tests_covered]
    passed = sum(bool(r.tests_passed) for r in covered)
    return {
        "n": n,
        "exact": exact,
        "exact_match": exact / n if n else None,
        "exact_ci95": list(wilson_interval(exact, n)) if n else None,
        "identifier_em": _mean([float(r.identifier_em) for r in records]),
        "identifier_f1": _mean([r.identifier_f1 for r in records]),
        "edit_similarity": _mean([r.edit_similarity for r in records]),
        "target_hit": _mean([float(r.target_hit) for r in records]),
        "context_tokens_mean": _mean([float(r.context_tokens) for r in records]),
        "ttft_s_mean": _mean(ttfts),
        "ttft_s_median": statistics.median(ttfts) if ttfts else None,
        "answer_in_context": sum(r.answer_in_context for r in records),
        "finish_reasons": dict(Counter(r.finish_reason for r in records)),
        "completion_tokens_mean": _mean([float(r.completion_tokens) for r in records]),
        # pass@1 with the package's own tests, over the tasks whose line they cover (repo_tests)
        "tests_scored": sum(r.tests_covered is not None for r in records),
        "tests_covered": len(covered),
        "tests_passed": passed,
        "pass_at_1": passed / len(covered) if covered else None,
        "pass_ci95": list(wilson_interval(passed, len(covered))) if covered else None,
    }


def summarise(records: Sequence[RepoRecord], conditions: Sequence[str]) -> dict[str, Any]:
    """Per condition (in the order run), plus the ratio of each condition's exact match to none's."""
    by = {c: condition_summary([r for r in records if r.condition == c]) for c in conditions}
    base = by.get("none", {}).get("exact_match")
    for c, s in by.items():
        em = s["exact_match"]
        s["exact_vs_none"] = None if base in (None, 0) or em is None or c == "none" else em / base
    return by


def verdict(by: dict[str, Any]) -> str | None:
    """Whether ``all`` reaches the target over ``none``, in one sentence; None without both."""
    if "none" not in by or "all" not in by:
        return None
    none, full = by["none"]["exact"], by["all"]["exact"]
    if none == 0:
        reached = full > 0
        ratio = "∞" if full else "—"
    else:
        reached = full / none >= TARGET_RATIO
        ratio = f"{full / none:.2f}×"
    word = "meets" if reached else "misses"
    return (
        f"all sources vs none: exact match {full} vs {none} of {by['all']['n']} ({ratio}); "
        f"{word} the {TARGET_RATIO}× target"
    )


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def table(by: dict[str, Any]) -> str:
    """The Markdown table: one row per condition."""
    rows = [
        "| Context | Tasks | Exact match % (95 % CI) | vs none | Identifier EM % | Identifier F1 | "
        "Edit sim. | Target id % | Tests pass@1 % (passed/covered) | Context tokens (mean) | "
        "TTFT mean s | Answer in context |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, s in by.items():
        ci = s["exact_ci95"]
        em = f"{_pct(s['exact_match'])} ({_pct(ci[0])}–{_pct(ci[1])})" if ci else "—"
        ratio = "—" if s["exact_vs_none"] is None else f"{s['exact_vs_none']:.2f}×"
        tests = "—"
        if s.get("tests_covered"):
            tests = f"{_pct(s['pass_at_1'])} ({s['tests_passed']}/{s['tests_covered']})"
        rows.append(
            f"| {c} | {s['n']} | {em} | {ratio} | {_pct(s['identifier_em'])} | "
            f"{_num(s['identifier_f1'], '.3f')} | {_num(s['edit_similarity'], '.3f')} | "
            f"{_pct(s['target_hit'])} | {tests} | {_num(s['context_tokens_mean'], '.0f')} | "
            f"{_num(s['ttft_s_mean'], '.3f')} | {s['answer_in_context']} |"
        )
    return "\n".join(rows)


def render_markdown(summary: dict[str, Any]) -> str:
    sel = summary["selection"]
    lines = [
        f"# cgstudio eval repo: {summary['model']}",
        "",
        f"{sel['n_tasks']} tasks of {sel['available']} (seed {sel['seed']}, limit {sel['limit']}), "
        f"packages: {', '.join(p['name'] + ' ' + p['version'] for p in summary['packages'])}.",
        "",
        table(summary["conditions"]),
        "",
    ]
    if summary.get("verdict"):
        lines += [f"**{summary['verdict']}.**", ""]
    lines += ["## Protocol", "", *[f"* {k}: {v}" for k, v in summary["protocol"].items()], ""]
    if summary.get("tests"):
        lines += ["## The packages' tests (pass@1)", ""]
        for name, t in summary["tests"].items():
            used = ", ".join(t["runnable"]) or "none"
            left = "; ".join(f"{k} ({v})" for k, v in t["skipped"].items()) or "none"
            lines.append(f"* {name}: used {used}; left out {left}")
        lines.append("")
    lines += [f"Started {summary['started_at']}, {summary['duration_s']:.0f} s."]
    return "\n".join(lines) + "\n"


def load(path: Path) -> tuple[list[RepoRecord], list[str]]:
    """The records of a results.jsonl (a stopped run's too) and its conditions in run order;
    a task whose conditions did not all finish is left out, so every condition has the same tasks."""
    lines = [x for x in path.read_text(encoding="utf-8").split("\n") if x.strip()]
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(RepoRecord(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            if n == len(lines):  # a run killed mid-write leaves its last line cut: skip it
                break
            raise InvalidInputError(f"{path}:{n}: not an eval repo results.jsonl record ({exc})") from None
    conditions = list(dict.fromkeys(r.condition for r in records))
    done = Counter(r.task_id for r in records)
    return [r for r in records if done[r.task_id] == len(conditions)], conditions


def write(out_dir: Path, summary: dict[str, Any], records: Sequence[RepoRecord]) -> Path:
    """report.md, results.jsonl and summary.json in ``out_dir``; the path of report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", "utf-8")
    path = out_dir / "report.md"
    path.write_text(render_markdown(summary), encoding="utf-8")
    return path
