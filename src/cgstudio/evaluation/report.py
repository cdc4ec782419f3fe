"""The results of an eval run: the ``--json`` document and the report folder.

The folder (``--out``, default ``./eval-results/<task>-<model>-<UTC timestamp>/``) holds

    report.md       the paper's columns beside this run's, outcomes, protocol and settings
    results.jsonl   one line per task and sample: task_id, completion, status, duration_s, ...
    summary.json    the ``--json`` document (settings included)

Percentages in report.md are pass@1 x 100, the paper's unit; JSON keeps fractions.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from cgstudio.evaluation.paper import BENCHMARKS, MODEL_TITLES, PAPER_MODELS, SOURCE, paper_block
from cgstudio.evaluation.records import EvalResult, SampleRecord

STYLE_TEXT = {
    "plain": "the prompt continued as plain text (no FIM tokens), cut at the HumanEval stop sequences",
    "fim-completion": "the prompt as a FIM prefix with an empty suffix, cut at the HumanEval stop sequences",
    "chat": "the chat template with the completion instruction; code extracted from the reply",
    "fim": "PSM fill-in-the-middle (prefix, suffix, then the middle), ended by the FIM sentinels",
    "canonical": "no model: the canonical solutions (a check of the data and the harness)",
}


def wilson_interval(passed: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a pass rate (fractions); (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    p = passed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summary_doc(
    result: EvalResult,
    *,
    model: str,
    model_info: dict[str, Any],
    paper_model: str | None,
    settings: dict[str, Any],
    selection: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``--json`` document: {task, model, n_tasks, pass_at_1, passed, failed, timed_out, error,
    settings, duration_s, paper, ...}. Counts are of samples (one per task when greedy)."""
    counts = result.counts()
    pass_at = result.pass_at()
    n = len(result.records)
    low, high = wilson_interval(counts["passed"], n)
    doc: dict[str, Any] = {
        "task": result.task_set,
        "model": model,
        "n_tasks": result.n_tasks,
        "pass_at_1": pass_at.get("pass@1", 0.0),
        "passed": counts["passed"],
        "failed": counts["failed"],
        "timed_out": counts["timed_out"],
        "error": counts["error"],
        "settings": settings,
        "duration_s": round(result.duration_s, 2),
        "paper": paper_block(result.task_set, paper_model),
        "n_samples": n,
        "samples_per_task": result.samples,
        "pass_at_k": pass_at,
        "ci95_pass_at_1": [round(low, 4), round(high, 4)] if result.samples == 1 else None,
        "complete": result.n_tasks == BENCHMARKS[result.task_set].n_tasks,
        "selection": selection,
        "style": result.style,
        "cached": sum(r.cached for r in result.records),
        "generated": sum(not r.cached for r in result.records) if result.style != "canonical" else 0,
        "skipped_uncached": result.skipped_uncached,
        "memory_containment": result.memory_containment,
        "generation_s": round(sum(r.generation_s for r in result.records), 2),
        "finish_reasons": dict(sorted(_count(r.finish_reason for r in result.records).items())),
        "warnings": dict(sorted(result.warnings().items())),
        "model_info": model_info,
    }
    doc.update(extra or {})
    return doc


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def default_out_dir(task_set: str, model: str, now: datetime) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-")[:60] or "model"
    return Path("eval-results") / f"{task_set}-{slug}-{now.strftime('%Y%m%dT%H%M%SZ')}"


def write_report(out_dir: Path, summary: dict[str, Any], records: list[SampleRecord]) -> Path:
    """Write report.md, results.jsonl and summary.json into ``out_dir``; return report.md's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.as_dict(), ensure_ascii=False) + "\n")
    (out_dir / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    path = out_dir / "report.md"
    path.write_text(render_markdown(summary), encoding="utf-8")
    return path


def _pct(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}"


def paper_table(task_set: str, ours: str, ours_label: str, tasks_text: str) -> str:
    """One markdown row per benchmark, the paper's columns beside ours (percent)."""
    bench = BENCHMARKS[task_set]
    head = ["Benchmark", "Tasks", ours_label, *(MODEL_TITLES[m] for m in PAPER_MODELS)]
    row = [
        bench.title,
        tasks_text,
        ours,
        *(f"{bench.pass_at_1[m]:g}" if m in bench.pass_at_1 else "—" for m in PAPER_MODELS),
    ]
    return "\n".join(
        [
            "| " + " | ".join(head) + " |",
            "|" + "|".join(["---", "---:", *["---:"] * (len(head) - 2)]) + "|",
            "| " + " | ".join(row) + " |",
        ]
    )


def tasks_text(summary: dict[str, Any]) -> str:
    sel = summary["selection"]
    full = BENCHMARKS[summary["task"]].n_tasks
    n = summary["n_tasks"]
    if n == full:
        return str(n)
    how = []
    if sel.get("sample") is not None:
        how.append(f"seeded sample, --sample {sel['sample']} --sample-seed {sel['sample_seed']}")
    if sel.get("limit") is not None:
        how.append(f"first {sel['limit']}")
    if summary.get("skipped_uncached"):
        how.append(f"{summary['skipped_uncached']} uncached skipped")
    return f"{n} of {full}" + (f" ({'; '.join(how)})" if how else "")


def render_markdown(s: dict[str, Any]) -> str:
    bench = BENCHMARKS[s["task"]]
    paper = s["paper"]
    ours = _pct(s["pass_at_1"])
    lines = [f"# cgstudio eval: {bench.title} — {s['model']}", ""]
    if not s["complete"]:
        lines += [
            f"**Partial run: {s['n_tasks']} of {bench.n_tasks} tasks.** A subset's pass@1 is not the "
            "full benchmark's; see the 95 % interval below.",
            "",
        ]
    lines += [paper_table(s["task"], ours, f"This run: {s['model']}", tasks_text(s)), ""]
    lines.append(f"pass@1 in percent. Paper: {SOURCE}; greedy decoding, {bench.n_tasks} tasks.")
    if s.get("ci95_pass_at_1"):
        low, high = s["ci95_pass_at_1"]
        lines.append(f"This run's 95 % interval (Wilson): {_pct(low)}–{_pct(high)}.")
    if paper["this_model"]:
        theirs = paper["this_model_pass_at_1"]
        title = MODEL_TITLES[paper["this_model"]]
        if theirs is None:
            lines.append(f"This model is {title}; the paper gives no figure for it on this benchmark.")
        else:
            delta = 100 * (s["pass_at_1"] - theirs)
            lines.append(f"This model is {title}: paper {_pct(theirs)}, this run {ours} ({delta:+.2f} pts).")
    elif s["model"] != "canonical":
        lines.append("This model is not a CodeGemma of the paper: its columns are context, not a target.")
    if len(s["pass_at_k"]) > 1:
        figures = ", ".join(f"{k} {_pct(v)}" for k, v in s["pass_at_k"].items())
        lines.append(f"Unbiased pass@k: {figures}.")
    lines += ["", "## Outcomes", ""]
    lines += ["| outcome | samples |", "|---|---:|"]
    for key in ("passed", "failed", "timed_out", "error"):
        lines.append(f"| {key} | {s[key]} |")
    lines += [
        "",
        f"- Finish reasons: {_inline(s['finish_reasons'])}. Warnings: {_inline(s['warnings']) or 'none'}.",
        f"- Completions: {s['generated']} generated now, {s['cached']} from the cache.",
        f"- Generation time (all completions, cached ones as first measured): {s['generation_s']:.1f} s; "
        f"this invocation's wall clock: {s['duration_s']:.1f} s"
        + (f" on {s['machine']['cpus']} CPUs ({s['machine']['platform']})." if s.get("machine") else "."),
        "",
        "## Protocol",
        "",
        f"- Prompt: {STYLE_TEXT[s['style']]}.",
    ]
    st = s["settings"]
    if s["style"] != "canonical":
        sampling = st["sampling"]
        decoding = (
            "greedy"
            if sampling["temperature"] == 0
            else f"temperature {sampling['temperature']}, top-p {sampling['top_p']}, "
            f"{s['samples_per_task']} samples per task, seed {st.get('seed') or 0} + sample"
        )
        lines += [
            f"- Decoding: {decoding}; at most {sampling['max_tokens']} tokens"
            + (f"; stops {json.dumps(sampling['stop'])}" if sampling["stop"] else "")
            + ".",
            _guards_line(st.get("guards") or {}),
        ]
    lines += [
        "- Program: prompt + completion + suffix + test + `check(entry_point)`, run in cgstudio's sandbox "
        f"(isolation: {s.get('isolation', '?')}, {st.get('timeout_s', '?')} s per program); it passes only "
        "if `check` returned (an early `exit()` is a failure).",
        *_containment_lines(s.get("containment"), s.get("memory_containment") or {}),
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(
            {"settings": st, "selection": s["selection"], "model": s["model_info"]},
            indent=2,
            ensure_ascii=False,
        ),
        "```",
        "",
        "Per-task results: `results.jsonl` (task_id, sample, completion, status, duration_s, ...).",
        "",
    ]
    return "\n".join(lines)


def _containment_lines(c: dict[str, Any] | None, per_run: dict[str, int]) -> list[str]:
    if not c:
        return []
    lines = [
        f"- Containment: file system {c['filesystem']}; network {c['network']}; user {c['user']}; "
        f"memory {c['memory']}; processes {c['processes']}."
    ]
    if per_run:
        lines.append(f"- Memory bound per test, as applied: {_inline(per_run)}.")
    lines += [f"- **Sandbox weaker than root-drop with a cgroup:** {w}." for w in c["warnings"]]
    return lines


def _inline(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _guards_line(guards: dict[str, bool | int]) -> str:
    if guards.get("fim_block_end"):
        return (
            "- Guards: **editor** (`--guards editor`, not the paper's protocol): every editor ending "
            "(suffix overlap, block end, line end, bracket overlap, token healing) and the suffix "
            f"window ({guards.get('fim_suffix_tokens', 0) or 'all'} tokens); the repetition guard on."
        )
    if guards.get("fim_stop_at_suffix"):
        return (
            "- Guards: **suffix** (`--guards suffix`, not the paper's protocol): a FIM completion stops "
            "where it starts repeating the suffix, as cgstudio does for editors; single-line and "
            "block-end rules off; the repetition guard on."
        )
    return (
        "- Guards: suffix-repetition, single-line and block-end FIM rules off; the repetition guard on "
        "(its stops show as finish reason `repetition`)."
    )
