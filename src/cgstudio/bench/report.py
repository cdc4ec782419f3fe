"""The bench's JSON document, BENCHMARKS.md and its PNG plots."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cgstudio.bench.stats import Ratio


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem = 0.0
    try:
        import psutil

        mem = psutil.virtual_memory().total / 2**30
    except ImportError:
        pass
    import llama_cpp  # imported here: the bench CLI's --help must not load it (start-up time)

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "llama_cpp_python": llama_cpp.__version__,
        "platform": platform.platform(),
    }


def plots(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made: list[Path] = []
    rows = doc["results"].get("ttft_by_prompt_length")
    if rows:
        with _figure(plt, out_dir / "bench_ttft.png", made) as ax:
            xs = [r["prompt_tokens"] for r in rows]
            ys = [r["ttft_s"]["median"] for r in rows]
            lo = [r["ttft_s"]["median"] - r["ttft_s"]["min"] for r in rows]
            hi = [r["ttft_s"]["max"] - r["ttft_s"]["median"] for r in rows]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3)
            ax.set_xlabel("prompt tokens (cold)")
            ax.set_ylabel("time to first token (s)")
            ax.set_title("TTFT against prompt length")
    conc = doc["results"].get("concurrency")
    if conc:
        with _figure(plt, out_dir / "bench_concurrency.png", made) as ax:
            xs = [r["streams"] for r in conc]
            ax.plot(xs, [r["aggregate_tok_s"]["median"] for r in conc], marker="o", label="aggregate")
            ax.plot(xs, [r["per_stream_tok_s"]["median"] for r in conc], marker="s", label="per stream")
            ax.set_xlabel("simultaneous streams")
            ax.set_ylabel("tokens/s")
            ax.set_xticks(xs)
            ax.set_title("Throughput against concurrency")
            ax.legend()
    return made


@contextmanager
def _figure(plt: Any, path: Path, made: list[Path]) -> Iterator[Any]:
    """One small plot: yields its axes; then adds the grid and saves it to `path` (appended to `made`)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    yield ax
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    made.append(path)


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, dict) and "median" in v:
        return f"{v['median']:.{digits}f} [{v['min']:.{digits}f}–{v['max']:.{digits}f}]"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(doc: dict[str, Any], ratios: dict[str, Ratio], images: list[Path], command: str) -> str:
    m = doc["machine"]
    lines = [
        "# Benchmarks",
        "",
        "Produced by `cgstudio bench`; the figures below are from one run. Each ratio is the median of",
        "per-trial ratios of interleaved trials (A B A B ...), with the min–max over trials in brackets.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['platform']}",
        f"- llama-cpp-python {m['llama_cpp_python']} (portable build, no AMX), Python {m['python']}",
        f"- Model: `{doc['model']}`; load profile: {doc['profile']}",
        f"- Command: `{command}`; mode: {'quick' if doc['quick'] else 'default'}; "
        f"wall time {doc['wall_s']:.0f} s;"
        f" peak RSS of the bench process {doc['peak_rss_mib']:.0f} MiB",
        "",
        "## Ratios",
        "",
        "| ratio | median [min–max] | target | verdict |",
        "|---|---|---|---|",
    ]
    for key, r in ratios.items():
        lines.append(f"| `{key}` | {r.value.fmt(digits=2)} | {r.target_text()} | {r.verdict()} |")
    lines += ["", "## Figures", ""]
    for section, value in doc["results"].items():
        if section == "raw_tg_samples":
            continue
        lines.append(f"### {section}")
        lines.append("")
        if isinstance(value, list):
            keys = list(value[0].keys()) if value else []
            lines.append("| " + " | ".join(keys) + " |")
            lines.append("|" + "---|" * len(keys))
            for row in value:
                lines.append("| " + " | ".join(_fmt(row[k]) for k in keys) + " |")
        else:
            for k, v in value.items():
                lines.append(f"- {k}: {_fmt(v)}")
        lines.append("")
    for img in images:
        lines.append(f"![{img.stem}]({img.name})")
    lines.append("")
    return "\n".join(lines)
