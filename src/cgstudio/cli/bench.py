"""``cgstudio bench``: like llama-bench, but measuring what users feel, with baselines in the same run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from cgstudio.cli.options import emit_json, json_option, load_options, model_option, settings_from

SECTIONS = ("decode", "ttft", "keystroke", "concurrency", "speculation", "http")


@click.command()
@model_option
@click.option("--quick", is_flag=True, help="A ~3-minute run with fewer trials (for tests).")
@click.option(
    "--sections", default=",".join(SECTIONS), show_default=True, help="Comma-separated sections to run."
)
@click.option(
    "--report",
    "report",
    default="BENCHMARKS.md",
    show_default=True,
    help="Write the markdown report (and PNG plots beside it) here; '' to skip.",
)
@load_options
@json_option
def bench(model: str | None, quick: bool, sections: str, report: str, as_json: bool, **opts: Any) -> None:
    """Measure pp/tg, TTFT, keystroke FIM latency, concurrency, speculation and HTTP streaming."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cgstudio.bench import report as rep
    from cgstudio.bench import runner
    from cgstudio.errors import UsageError
    from cgstudio.models.resolve import resolve

    chosen = [s.strip() for s in sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise UsageError(f"unknown bench sections {unknown}; known: {', '.join(SECTIONS)}")
    settings = settings_from(opts)
    resolved = resolve(model, configured=settings.model)
    if resolved.notice:
        click.echo(f"note: {resolved.notice}", err=True)
    profile = settings.load.model_copy(update={"n_ctx": min(settings.load.n_ctx, 4096)})
    plan = runner.Plan.make(quick)
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=False
    ) as progress:
        task = progress.add_task("bench", total=len(chosen))
        bc = runner.BenchContext(
            resolved.path, profile, plan, progress=lambda msg: progress.update(task, description=msg)
        )
        out_dir = Path(report).parent if report else Path(".")
        for name in chosen:
            progress.update(task, description=name)
            if name == "http":
                runner.run_http(bc, out_dir / "bench-logs")
            else:
                getattr(runner, f"run_{name}")(bc)
            progress.advance(task)
    doc: dict[str, Any] = {
        "model": str(resolved.path),
        "profile": profile.model_dump(exclude_defaults=True) or "defaults",
        "quick": quick,
        "machine": rep.machine(),
        "wall_s": time.perf_counter() - t0,
        "peak_rss_mib": runner.peak_rss_mib(),
        "ratios": {k: r.as_dict() for k, r in bc.ratios.items()},
        "results": {k: v for k, v in bc.results.items() if k != "raw_tg_samples"},
    }
    if report:
        path = Path(report)
        path.parent.mkdir(parents=True, exist_ok=True)
        images = rep.plots(doc, path.parent)
        command = "cgstudio " + " ".join(sys.argv[1:]) if sys.argv[1:] else "cgstudio bench"
        path.write_text(rep.markdown(doc, bc.ratios, images, command))
        click.echo(
            f"wrote {path}" + (f" and {', '.join(i.name for i in images)}" if images else ""), err=True
        )
    if as_json:
        emit_json(doc)
        return
    for key, r in bc.ratios.items():
        click.echo(f"{key:36s} {r.value.fmt()}  target ≥ {r.target}  {r.verdict()}")
    click.echo(json.dumps(doc["results"], indent=1, default=str)[:4000])
