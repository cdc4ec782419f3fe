"""``cgstudio eval``: HumanEval and the infilling sets, scored like the CodeGemma paper.

    cgstudio eval TASK [OPTIONS]          run a model on TASK (shorthand for ``cgstudio eval run TASK``)
    cgstudio eval tasks TASK [--jsonl]    print the task set

TASK is humaneval, infill-single or infill-multi. The protocol is in ``evaluation.runner``.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cgstudio.cli.options import emit_json, json_option, load_options, model_option, settings_from
from cgstudio.core.errors import UsageError
from cgstudio.evaluation.datasets import TASK_SETS

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
    from cgstudio.evaluation.runner import select_tasks

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
    type=click.Choice(["codegemma", "gemma", "qwen2.5-coder"]),
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
    type=click.Choice(["paper", "editor"]),
    default="paper",
    show_default=True,
    help="paper: the paper's protocol (FIM output is not cut); editor: also stop a FIM completion "
    "where it repeats the suffix, as cgstudio does for editors (local models only; reported apart).",
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
    from cgstudio.evaluation.runner import select_tasks

    if as_json and jsonl:
        raise UsageError("choose --json or --jsonl, not both")
    if canonical and base_url:
        raise UsageError("--canonical needs no model: drop --base-url")
    if base_url and not model and remote_backend == "server":
        raise UsageError("--base-url needs --model: the server's name for the model (or --backend openai)")
    if guard_set == "editor" and (base_url or canonical):
        raise UsageError("--guards editor needs a local model (a server applies its own guards)")
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
    run = _Run(task, chosen, temperature, samples, opts.get("seed__opt"), workers, timeout_s, parallel)
    if canonical:
        summary, records = run.canonical(selection)
    else:
        if base_url and remote_backend == "openai":
            backend = _engine_backend(model, base_url, api_key, family, opts)
        else:
            backend = _open_backend(model, base_url, api_key, parallel, opts, guard_set)
        try:
            summary, records = run.with_model(backend, completion_style, cache_dir, cached_only, selection)
        finally:
            backend.close()
    from cgstudio.evaluation.report import default_out_dir, write_report

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


def _open_backend(
    model: str | None,
    base_url: str | None,
    api_key: str | None,
    parallel: int,
    opts: dict[str, Any],
    guard_set: str = "paper",
) -> Any:
    from cgstudio.evaluation.runner import EDITOR_GUARDS, EVAL_GUARDS, LocalBackend, RemoteBackend

    variant = opts.get("variant") or "auto"
    if base_url:
        assert model is not None
        settings_from(opts)  # validates the flags even though the server has its own
        return RemoteBackend(base_url, model, variant, api_key)
    from cgstudio.engine.llamacpp import LlamaCppEngine
    from cgstudio.session.model import CodeModel
    from cgstudio.store.resolve import resolve

    settings = settings_from(opts)
    # Prefix-only KV reuse: shifting a cached chunk (the default for FIM) can change outputs.
    settings.load.cache_reuse = 0
    settings.load.n_parallel = parallel
    resolved = resolve(model, configured=settings.model)
    if resolved.notice:
        click.echo(f"note: {resolved.notice}", err=True)
    guards = EDITOR_GUARDS if guard_set == "editor" else EVAL_GUARDS
    model_ = CodeModel(LlamaCppEngine(resolved.path, settings.load), settings, resolved.alias)
    return LocalBackend(model_, guards)


def _engine_backend(
    model: str | None, base_url: str, api_key: str | None, family: str | None, opts: dict[str, Any]
) -> Any:
    from cgstudio.evaluation.remote import open_engine_backend

    settings = settings_from(opts)
    path = Path(model).expanduser() if model else None
    tokenizer = path if path is not None and (path.suffix == ".gguf" or path.exists()) else None
    upstream_model = None if tokenizer is not None else model
    return open_engine_backend(base_url, api_key, upstream_model, tokenizer, family, settings)


@dataclasses.dataclass
class _Run:
    task: str
    tasks: list[Any]
    temperature: float
    samples: int
    seed: int | None
    workers: int
    timeout_s: float
    parallel: int

    def _base_settings(self) -> dict[str, Any]:
        from cgstudio.evaluation.cache import PROTOCOL_VERSION

        return {
            "protocol_version": PROTOCOL_VERSION,
            "workers": self.workers,
            "timeout_s": self.timeout_s,
            "parallel": self.parallel,
        }

    def canonical(self, selection: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
        from cgstudio.evaluation.report import summary_doc
        from cgstudio.evaluation.runner import run_eval
        from cgstudio.evaluation.sandbox import Limits

        result = run_eval(
            self.task,
            self.tasks,
            None,
            workers=self.workers,
            limits=Limits(self.timeout_s),
            progress=make_progress(f"{self.task} canonical"),
        )
        summary = summary_doc(
            result,
            model="canonical",
            model_info={"name": "canonical"},
            paper_model=None,
            settings=self._base_settings(),
            selection=selection,
            extra=_environment(self.timeout_s),
        )
        return summary, result.records

    def with_model(
        self,
        backend: Any,
        completion_style: str,
        cache_dir: Path | None,
        cached_only: bool,
        selection: dict[str, Any],
    ) -> tuple[dict[str, Any], list[Any]]:
        from cgstudio.evaluation.cache import CompletionCache, default_cache_dir, settings_fingerprint
        from cgstudio.evaluation.paper import paper_model
        from cgstudio.evaluation.report import summary_doc
        from cgstudio.evaluation.runner import EVAL_GUARDS, choose_style, key_settings, run_eval, sampling_for
        from cgstudio.evaluation.sandbox import Limits

        style_choice = "fim-completion" if completion_style == "fim" else "plain"
        style = choose_style(self.task, backend.variant, backend.fim_capable, style_choice)
        key_doc = key_settings(self.task, style, self.temperature, self.seed, backend.cache_settings())
        key = settings_fingerprint(key_doc)
        cache = CompletionCache(cache_dir or default_cache_dir(), backend.fingerprint, key, self.task)
        info = backend.describe()
        cache.write_meta({"model": info, "settings": key_doc})
        click.echo(
            f"{self.task}: {len(self.tasks)} tasks x {self.samples} sample(s), {backend.name} "
            f"({backend.variant}, style {style}); cache {cache.path}",
            err=True,
        )
        t0 = time.perf_counter()
        try:
            result = run_eval(
                self.task,
                self.tasks,
                backend,
                style=style,
                temperature=self.temperature,
                samples=self.samples,
                seed=self.seed,
                workers=self.workers,
                parallel=self.parallel,
                cache=cache,
                cached_only=cached_only,
                limits=Limits(self.timeout_s),
                progress=make_progress(f"{self.task} {backend.name}"),
            )
        except KeyboardInterrupt:
            click.echo(
                f"interrupted after {time.perf_counter() - t0:.0f} s: every finished completion is "
                f"cached in {cache.path}; run the same command again to resume",
                err=True,
            )
            raise
        file_name = Path(str(info.get("path") or info["name"])).name
        name_for_paper = f"{info.get('general_name') or ''} {file_name}"
        paper_key = paper_model(name_for_paper, backend.variant)
        settings = {
            **self._base_settings(),
            "style": style,
            "sampling": sampling_for(style, self.temperature, self.seed, 0),
            "samples": self.samples,
            "seed": self.seed,
            "guards": getattr(backend, "guards", EVAL_GUARDS),
            "backend": backend.cache_settings(),
            "cache_key": key,
            "cache_file": str(cache.path),
        }
        summary = summary_doc(
            result,
            model=backend.name,
            model_info={**info, "paper_model": paper_key},
            paper_model=paper_key,
            settings=settings,
            selection=selection,
            extra=_environment(self.timeout_s),
        )
        return summary, result.records


def _environment(timeout_s: float) -> dict[str, Any]:
    from cgstudio.evaluation.sandbox import Limits, containment, isolation_mode

    mode = isolation_mode()
    try:
        version = importlib.metadata.version("cgstudio")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    machine = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    return {
        "isolation": mode,
        # What bounded the tests (file system, user, memory total, processes) and how it is weaker
        # than root-drop with a cgroup, if it is.
        "containment": containment(mode, Limits(timeout_s)),
        "cgstudio_version": version,
        "machine": machine,
    }


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


# ---------------------------------------------------------------------------------------------------
# Progress on stderr: a rich bar on a terminal, periodic lines in a log file.


def make_progress(label: str) -> Any:
    return _RichProgress(label) if sys.stderr.isatty() else _LineProgress(label)


class _RichProgress:
    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.label = label
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.gen: Any = None
        self.test: Any = None

    def start(self, total: int, cached: int) -> None:
        if cached:
            self.progress.console.print(f"{cached} of {total} completions from the cache")
        self.progress.start()
        self.gen = self.progress.add_task(f"{self.label}: generate", total=total)
        self.test = self.progress.add_task("test (passed 0)", total=total)

    def generated(self, cached: bool) -> None:
        self.progress.advance(self.gen)

    def tested(self, status: str, passed: int, done: int) -> None:
        self.progress.update(self.test, advance=1, description=f"test (passed {passed}/{done})")

    def stop(self) -> None:
        self.progress.stop()


class _LineProgress:
    """For logs: a line every 30 s (and at the end) with counts, the rate of new completions and an ETA."""

    EVERY_S = 30.0

    def __init__(self, label: str) -> None:
        self.label = label
        self.total = self.cached = self.generated_n = self.new = self.tested_n = self.passed = 0
        self.t0 = self.last = time.monotonic()
        self._said: tuple[int, int] | None = None

    def start(self, total: int, cached: int) -> None:
        self.total, self.cached = total, cached
        self._say(f"start: {cached} of {total} completions from the cache")

    def generated(self, cached: bool) -> None:
        self.generated_n += 1
        self.new += not cached
        if time.monotonic() - self.last >= self.EVERY_S:
            self._status()

    def tested(self, status: str, passed: int, done: int) -> None:
        self.tested_n, self.passed = done, passed

    def stop(self) -> None:
        self._status()

    def _status(self) -> None:
        state = (self.generated_n, self.tested_n)
        if state == self._said:
            return
        self._said = state
        self.last = now = time.monotonic()
        rate = self.new / (now - self.t0) if self.new else 0.0
        left = self.total - self.generated_n
        eta = f"{left / rate / 60:.0f} min" if rate > 0 else "?"
        self._say(
            f"generated {self.generated_n}/{self.total} ({self.new} new, {rate * 60:.1f}/min), "
            f"tested {self.tested_n}, passed {self.passed}, ETA {eta}"
        )

    def _say(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        click.echo(f"[{stamp}] {self.label}: {text}", err=True)
