"""``cgstudio bench``: like llama-bench, but measuring what users feel, with baselines in the same run."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from cgstudio.cli.options import emit_json, json_option, load_options, model_option, settings_from

# Spelled out here so that ``cgstudio bench --help`` needs no model runtime; the registry in
# cgstudio.bench.sections must have every one of these (tests/bench/test_sections.py checks).
SECTIONS = ("decode", "ttft", "keystroke", "concurrency", "speculation", "http", "priority")  # default
KNOWN = (*SECTIONS, "remote", "peer")  # remote: with --base-url; peer: with --peer


@click.command()
@model_option
@click.option("--quick", is_flag=True, help="A ~3-minute run with fewer trials (for tests).")
@click.option(
    "--sections",
    default=None,
    help=f"Comma-separated sections to run [{','.join(SECTIONS)}; with --base-url: remote].",
)
@click.option(
    "--base-url",
    default=None,
    help="An OpenAI-compatible upstream (vLLM, llama_cpp.server): the 'remote' section measures "
    "streaming through cgstudio in front of it against calling it directly.",
)
@click.option("--api-key-upstream", envvar="CGSTUDIO_UPSTREAM_API_KEY", default=None, help="Upstream key.")
@click.option(
    "--peer",
    default=None,
    metavar="llama-server=PATH",
    help="llama.cpp's own server (`make peer` builds it): the 'peer' section runs the typing "
    "traces and four concurrent streams on both, interleaved. Adds 'peer' to the default sections.",
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
def bench(
    model: str | None,
    quick: bool,
    sections: str | None,
    base_url: str | None,
    api_key_upstream: str | None,
    peer: str | None,
    report: str,
    as_json: bool,
    **opts: Any,
) -> None:
    """Measure pp/tg, TTFT, keystroke FIM latency, concurrency, speculation and HTTP streaming.

    With --base-url, the 'remote' section: cgstudio in front of an upstream against the upstream
    alone (--model, if given, is the model's GGUF: cgstudio's tokenizer).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from cgstudio.bench import report as rep
    from cgstudio.bench import suite
    from cgstudio.bench.context import BenchContext, Plan, Upstream
    from cgstudio.bench.sections.peer import peer_binary
    from cgstudio.core.errors import UsageError
    from cgstudio.store.resolve import resolve

    default = "remote" if base_url else ",".join(SECTIONS) + (",peer" if peer else "")
    chosen = [s.strip() for s in (sections or default).split(",") if s.strip()]
    unknown = [s for s in chosen if s not in KNOWN]
    if unknown:
        raise UsageError(f"unknown bench sections {unknown}; known: {', '.join(KNOWN)}")
    if "remote" in chosen and not base_url:
        raise UsageError("the remote section needs --base-url URL (an OpenAI-compatible upstream)")
    if "peer" in chosen and not peer:
        raise UsageError("the peer section needs --peer llama-server=PATH (`make peer` builds it)")
    try:
        peer_path = peer_binary(peer) if peer else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = settings_from(opts)
    if base_url and chosen == ["remote"] and not model:
        resolved = None  # the front uses the upstream's tokenizer
    else:
        resolved = resolve(model, configured=settings.model)
        if resolved.notice:
            click.echo(f"note: {resolved.notice}", err=True)
    model_path = resolved.path if resolved else Path("remote")
    profile = settings.load.model_copy(update={"n_ctx": min(settings.load.n_ctx, 4096)})
    upstream = (
        Upstream(base_url, tokenizer=resolved.path if resolved else None, api_key=api_key_upstream)
        if base_url
        else None
    )
    out_dir = Path(report).parent if report else Path(".")
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the servers the sections started as
    # subprocesses are stopped by their context managers instead of being left running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console, transient=False
    ) as progress:
        task = progress.add_task("bench", total=len(chosen))
        bc = BenchContext(
            model_path,
            profile,
            Plan.make(quick),
            progress=lambda msg: progress.update(task, description=msg),
            log_dir=out_dir / "bench-logs",
            upstream=upstream,
            peer=peer_path,
        )
        suite.run_sections(
            bc,
            chosen,
            on_start=lambda name: progress.update(task, description=name),
            on_done=lambda name: progress.advance(task),
        )
    doc = suite.document(
        bc,
        model=str(model_path) + (f" behind {base_url}" if base_url else ""),
        quick=quick,
        machine=rep.machine(),
        wall_s=time.perf_counter() - t0,
    )
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
        click.echo(f"{key:36s} {r.value.fmt()}  target {r.target_text()}  {r.verdict()}")
    click.echo(json.dumps(doc["results"], indent=1, default=str)[:4000])


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
