"""``cgstudio eval``: HumanEval and the infilling sets, scored like the CodeGemma paper.

    cgstudio eval TASK [OPTIONS]          run a model on TASK (shorthand for ``cgstudio eval run TASK``)
    cgstudio eval tasks TASK [--jsonl]    print the task set
    cgstudio eval repo [OPTIONS]          the cross-file benchmark of repository context (cli.eval_repo)

TASK is humaneval, infill-single or infill-multi. The protocol is in ``evaluation.protocol``, the
run in ``evaluation.job`` and ``evaluation.runner``, the progress display in ``cli.progress``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cgstudio.cli.eval_repo import repo_command
from cgstudio.cli.options import emit_json, json_option, load_options, model_option, settings_from
from cgstudio.cli.progress import EvalProgress, make_progress
from cgstudio.core.errors import UsageError
from cgstudio.evaluation.backends import Backend, open_local_backend
from cgstudio.evaluation.datasets import TASK_SETS
from cgstudio.evaluation.job import EvalJob
from cgstudio.evaluation.protocol import select_tasks
from cgstudio.evaluation.remote import RemoteBackend, open_engine_backend
from cgstudio.evaluation.report import default_out_dir, write_report
from cgstudio.families import family_names
from cgstudio.store.resolve import resolve

TASK_CHOICE = click.Choice(list(TASK_SETS))


class _EvalGroup(click.Group):
    """A group whose default subcommand is ``run``: ``eval humaneval ...`` = ``eval run humaneval ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_EvalGroup, context_settings={"help_option_names": ["-h", "--help"]})
def eval_group() -> None:
    """Reproduce the CodeGemma paper's HumanEval and infilling numbers.

    \b
    cgstudio eval TASK --model M [OPTIONS]   same as `cgstudio eval run TASK ...`
    cgstudio eval tasks TASK --jsonl         print the task set
    cgstudio eval repo --model M             cross-file completion with repository context
    TASK: humaneval (164), infill-single (1033) or infill-multi (5815).
    """


def _selection_options(f: Any) -> Any:
    f = click.option("--sample-seed", type=int, default=0, show_default=True, help="Seed of --sample.")(f)
    f = click.option(
        "--sample",
        "sample_n",
        type=int,
        default=None,
        help="A fixed seeded sample of N tasks, kept in set order.",
    )(f)
    f = click.option("--limit", type=int, default=None, help="Only the first N tasks (after --sample).")(f)
    return f


@eval_group.command("tasks")
@click.argument("task", type=TASK_CHOICE)
@_selection_options
@click.option("--jsonl", is_flag=True, help="One JSON object per task on stdout.")
def tasks_command(task: str, limit: int | None, sample_n: int | None, sample_seed: int, jsonl: bool) -> None:
    """Print TASK's tasks: task_id, prompt, suffix, canonical_solution, test, entry_point."""
    chosen = select_tasks(task, limit, sample_n, sample_seed)
    out = sys.stdout
    for t in chosen:
        if jsonl:
            out.write(json.dumps(dataclasses.asdict(t), ensure_ascii=False) + "\n")
        else:
            hole = t.canonical_solution.strip().split("\n")
            shown = hole[0] if len(hole) == 1 else f"{hole[0]} … ({len(hole)} lines)"
            out.write(f"{t.task_id}\t{shown}\n")
    out.flush()
    click.echo(f"{len(chosen)} tasks", err=True)


@eval_group.command("run")
@click.argument("task", type=TASK_CHOICE)
@model_option
@click.option(
    "--base-url",
    default=None,
    help="An OpenAI-compatible server (e.g. http://127.0.0.1:8080/v1); --model is its model name.",
)
@click.option(
    "--api-key",
    envvar="CGSTUDIO_EVAL_API_KEY",
    default=None,
    help="Bearer token for --base-url [CGSTUDIO_EVAL_API_KEY].",
)
@click.option(
    "--backend",
    "remote_backend",
    type=click.Choice(["server", "openai"]),
    default="server",
    show_default=True,
    help="With --base-url: 'server' sends tasks as they are (the server renders its format); "
    "'openai' runs cgstudio's formats and guards with the server as the engine "
    "(--model: its model id or the model's GGUF; optional).",
)
@click.option(
    "--family",
    type=click.Choice(family_names()),
    default=None,
    help="--backend openai without a GGUF: the prompt family [from the server's model id].",
)
@click.option("--canonical", is_flag=True, help="Score the canonical solutions (no model): must give 1.0.")
@_selection_options
@click.option(
    "--temperature",
    "--temp",
    type=float,
    default=0.0,
    show_default=True,
    help="0 = greedy (the paper's pass@1). Above 0: top-p 0.95 sampling.",
)
@click.option(
    "--samples",
    type=int,
    default=1,
    show_default=True,
    help="Samples per task, for the unbiased pass@k (needs --temperature > 0).",
)
@click.option(
    "--variant",
    type=click.Choice(["auto", "pretrained", "instruction-tuned"]),
    default=None,
    help="Override variant detection: -it models get HumanEval through chat.",
)
@click.option(
    "--completion-style",
    type=click.Choice(["plain", "fim"]),
    default="plain",
    show_default=True,
    help="HumanEval on pretrained FIM models: plain continuation, or FIM with an empty suffix.",
)
@click.option(
    "--parallel",
    "-np",
    type=int,
    default=1,
    show_default=True,
    help="Completions generated at once, batched (each gets --ctx-size of KV). Greedy outputs can "
    "differ from one-at-a-time runs at near-ties: see EVALUATION.md.",
)
@click.option(
    "--guards",
    "guard_set",
    type=click.Choice(["paper", "suffix", "editor"]),
    default="paper",
    show_default=True,
    help="paper: the paper's protocol (FIM output is not cut); suffix: stop a FIM completion where it "
    "repeats the suffix (the editor guards before issue 16); editor: every editor ending (block end, "
    "line end, bracket overlap, token healing) as editors get them (local models only; reported apart).",
)
@click.option("--workers", type=int, default=2, show_default=True, help="Tests run in parallel.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds each test program may run.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Completion cache [$CGSTUDIO_HOME/eval-cache or ~/.cache/cgstudio/eval-cache].",
)
@click.option("--cached-only", is_flag=True, help="Score only completions already cached; generate nothing.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Report folder [./eval-results/<task>-<model>-<timestamp>].",
)
@load_options
@json_option
@click.option("--jsonl", is_flag=True, help="Per-task results on stdout, one JSON object per line.")
def run_command(
    task: str,
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    remote_backend: str,
    family: str | None,
    canonical: bool,
    limit: int | None,
    sample_n: int | None,
    sample_seed: int,
    temperature: float,
    samples: int,
    completion_style: str,
    parallel: int,
    guard_set: str,
    workers: int,
    timeout_s: float,
    cache_dir: Path | None,
    cached_only: bool,
    out_dir: Path | None,
    as_json: bool,
    jsonl: bool,
    **opts: Any,
) -> None:
    """Run a model on TASK and score it; resumable (completions are cached).

    Progress goes to stderr; with --json or --jsonl, stdout carries only the document.
    """
    if as_json and jsonl:
        raise UsageError("choose --json or --jsonl, not both")
    if canonical and base_url:
        raise UsageError("--canonical needs no model: drop --base-url")
    if base_url and not model and remote_backend == "server":
        raise UsageError("--base-url needs --model: the server's name for the model (or --backend openai)")
    if guard_set != "paper" and (base_url or canonical):
        raise UsageError(f"--guards {guard_set} needs a local model (a server applies its own guards)")
    if workers < 1 or parallel < 1 or timeout_s <= 0:
        raise UsageError("--workers and --parallel must be at least 1, --timeout above 0")
    chosen = select_tasks(task, limit, sample_n, sample_seed)
    selection = {
        "limit": limit,
        "sample": sample_n,
        "sample_seed": sample_seed if sample_n else None,
        "of": len(TASK_SETS[task]()),
    }
    started_at = datetime.now(UTC)
    seed = opts.get("seed__opt")
    # The display exists from here: the model load and the first completion are its first phases.
    progress = make_progress(task, cold_start=not canonical)
    run = EvalJob(task, chosen, temperature, samples, seed, workers, timeout_s, parallel, progress, _note)
    try:
        if canonical:
            summary, records = run.canonical(selection)
        else:
            if base_url and remote_backend == "openai":
                backend = _engine_backend(model, base_url, api_key, family, opts)
            else:
                backend = _open_backend(model, base_url, api_key, parallel, opts, guard_set, progress)
            try:
                summary, records = run.with_model(
                    backend, completion_style, cache_dir, cached_only, selection
                )
            finally:
                backend.close()
    finally:
        progress.stop()
    out = out_dir or default_out_dir(task, summary["model"], started_at)
    summary["report"] = str(out / "report.md")
    summary["started_at"] = started_at.isoformat(timespec="seconds")
    write_report(out, summary, records)
    if as_json:
        emit_json(summary)
    elif jsonl:
        for record in records:
            sys.stdout.write(json.dumps(record.as_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
    else:
        click.echo(_headline(summary))
    click.echo(f"report: {summary['report']}", err=True)


eval_group.add_command(repo_command)


def _note(text: str) -> None:
    click.echo(text, err=True)


def _open_backend(
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    parallel: int,
    opts: dict[str, Any],
    guard_set: str = "paper",
    progress: EvalProgress | None = None,
) -> Backend:
    variant = opts.get("variant") or "auto"
    if base_url:
        assert model is not None
        settings_from(opts)  # validates the flags even though the server has its own
        return RemoteBackend(base_url, model, variant, api_key)
    settings = settings_from(opts)
    resolved = resolve(model, configured=settings.model)
    if resolved.notice:
        click.echo(f"note: {resolved.notice}", err=True)
    if progress is not None:
        progress.phase(f"loading {resolved.alias}")
    return open_local_backend(resolved.path, resolved.alias, settings, parallel, guard_set)


def _engine_backend(
    model: str | None, base_url: str, api_key: str | None, family: str | None, opts: dict[str, Any]
) -> Backend:
    settings = settings_from(opts)
    path = Path(model).expanduser() if model else None
    tokenizer = path if path is not None and (path.suffix == ".gguf" or path.exists()) else None
    upstream_model = None if tokenizer is not None else model
    return open_engine_backend(base_url, api_key, upstream_model, tokenizer, family, settings)


def _headline(s: dict[str, Any]) -> str:
    paper = s["paper"]
    theirs = ""
    if paper["this_model_pass_at_1"] is not None:
        theirs = f" · paper {100 * paper['this_model_pass_at_1']:.2f}%"
    partial = "" if s["complete"] else f" (partial: {s['n_tasks']} of {paper['n_tasks']} tasks)"
    return (
        f"{s['task']} · {s['model']} · pass@1 {100 * s['pass_at_1']:.2f}% "
        f"({s['passed']}/{s['n_samples']}){partial}{theirs} · {s['duration_s']:.0f} s"
    )
