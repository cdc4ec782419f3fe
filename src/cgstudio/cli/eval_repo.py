"""``cgstudio eval repo``: the cross-file benchmark of repository context (issue 16 §3).

    cgstudio eval repo --model M [--context C ...] [--limit N] [--seed S] [--json]

Tasks come from the pinned corpus (``evaluation.repo_corpus``, downloaded once into the cache) or
from local source trees (``--package DIR``); ``evaluation.repo_tasks`` builds them, ``repo_run``
runs them through the server's FIM path, ``repo_tests`` runs the packages' own tests on the
completions (pass@1), ``repo_report`` writes the table.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cgstudio.cli.options import emit_json, json_option, load_options, model_option, settings_from
from cgstudio.core.errors import UsageError
from cgstudio.evaluation import repo_corpus, repo_report, repo_tests
from cgstudio.evaluation.backends import open_local_backend
from cgstudio.evaluation.repo_run import (
    CONDITIONS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_WINDOW,
    REPO_GUARDS,
    RepoRecord,
    run_tasks,
)
from cgstudio.evaluation.repo_tasks import select_tasks
from cgstudio.evaluation.report import default_out_dir
from cgstudio.store.resolve import resolve


def _conditions(values: tuple[str, ...]) -> list[str]:
    chosen = [c.strip() for v in values for c in v.split(",") if c.strip()] or list(CONDITIONS)
    bad = [c for c in chosen if c not in CONDITIONS]
    if bad:
        raise UsageError(f"--context {', '.join(bad)}: choose from {', '.join(CONDITIONS)} (or a comma list)")
    return list(dict.fromkeys(chosen))


def _packages(
    local: tuple[Path, ...], names: tuple[str, ...], cache: Path | None, corpus_set: str = "crossfile"
) -> list[dict[str, Any]]:
    if local:
        if names:
            raise UsageError("choose --package DIR or --corpus NAME, not both")
        out = []
        for d in local:
            if not d.is_dir():
                raise UsageError(f"--package {d}: no such folder; give the root of a Python source tree")
            out.append({"name": d.resolve().name, "version": "local", "root": d.resolve()})
        return out
    return [
        {"name": s.name, "version": s.version, "sha256": s.sha256, "root": repo_corpus.fetch(s, cache)}
        for s in repo_corpus.select(names, corpus_set)
    ]


@click.command("repo")
@model_option
@click.option(
    "--context",
    "contexts",
    multiple=True,
    help=f"Conditions to run, repeatable or comma-separated: {', '.join(CONDITIONS)} [all of them, "
    "interleaved per task].",
)
@click.option("--limit", type=int, default=None, help="Only the first N tasks (after the seeded shuffle).")
@click.option(
    "--package",
    "local",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A local Python source tree to build tasks from instead of the pinned corpus (repeatable).",
)
@click.option("--corpus", "names", multiple=True, help="Only these corpus packages (repeatable).")
@click.option(
    "--corpus-set",
    type=click.Choice(sorted(repo_corpus.CORPUS_SETS)),
    default="crossfile",
    show_default=True,
    help="crossfile: the six packages of the context benchmark; tested: three whose own tests run "
    "offline, for pass@1.",
)
@click.option(
    "--implementation-only",
    is_flag=True,
    help="Only tasks in implementation files (not in test code): the ones tests can judge.",
)
@click.option(
    "--corpus-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the corpus sdists are cached [$CGSTUDIO_HOME/eval-repo or ~/.cache/cgstudio/eval-repo].",
)
@click.option(
    "--max-tokens",
    type=int,
    default=DEFAULT_MAX_TOKENS,
    show_default=True,
    help="Tokens per completion (one line).",
)
@click.option(
    "--window",
    type=(int, int),
    default=DEFAULT_WINDOW,
    show_default=True,
    help="Lines before and after the masked line that the request carries, as an editor sends a "
    "window of the file (-1 -1: the whole file).",
)
@click.option(
    "--results",
    "results_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Only print the table of an existing results.jsonl (a stopped run's: its finished tasks).",
)
@click.option(
    "--tests/--no-tests",
    "run_tests",
    default=None,
    help="Run each package's own tests on the completions (pass@1, in the eval sandbox) [on for a "
    "run; with --results, off: --tests scores an old run's completions, tasks picked by --seed].",
)
@click.option("--tasks-only", is_flag=True, help="List the tasks (JSON lines) and exit; no model.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Report folder [./eval-results/repo-<model>-<timestamp>].",
)
@load_options
@json_option
def repo_command(
    model: str | None,
    contexts: tuple[str, ...],
    limit: int | None,
    local: tuple[Path, ...],
    names: tuple[str, ...],
    corpus_set: str,
    implementation_only: bool,
    corpus_dir: Path | None,
    max_tokens: int,
    window: tuple[int, int],
    results_file: Path | None,
    run_tests: bool | None,
    tasks_only: bool,
    out_dir: Path | None,
    as_json: bool,
    **opts: Any,
) -> None:
    """Cross-file completion: mask a line that needs another file of the package, and score exact
    and identifier match with no context, each context source alone, and all of them.

    --seed S picks the tasks (default 0; decoding is greedy). Progress goes to stderr; with
    --json stdout carries only the document.
    """
    seed = opts.get("seed__opt") or 0
    if results_file is not None:
        finished, run_conditions = repo_report.load(results_file)
        if run_tests:
            roots = [(p["name"], p["root"]) for p in _packages(local, names, corpus_dir, corpus_set)]
            suites = _score_tests(finished, select_tasks(roots, seed, None, implementation_only), roots)
            if out_dir is not None:
                _rescored(out_dir, finished, repo_tests.describe(suites))
        by = repo_report.summarise(finished, run_conditions)
        click.echo(json.dumps(by, indent=2) if as_json else repo_report.table(by))
        if not as_json and (line := repo_report.verdict(by)):
            click.echo(line)
        return
    conditions = _conditions(contexts)
    if (limit is not None and limit < 1) or not 1 <= max_tokens <= 512:
        raise UsageError("--limit must be at least 1 and --max-tokens between 1 and 512")
    packages = _packages(local, names, corpus_dir, corpus_set)
    roots = [(p["name"], p["root"]) for p in packages]
    available = len(select_tasks(roots, seed, None, implementation_only))
    tasks = select_tasks(roots, seed, limit, implementation_only)
    if tasks_only:
        for t in tasks:
            fields = ("task_id", "path", "line", "answer", "identifier", "kind", "def_path", "def_line")
            click.echo(json.dumps({k: getattr(t, k) for k in fields}, ensure_ascii=False))
        return
    if not tasks:
        raise UsageError(
            "no task found: the packages have no line that uses a name defined only in another file"
        )
    settings = settings_from(opts)
    resolved = resolve(model, configured=settings.model)
    click.echo(f"loading {resolved.alias}; {len(tasks)} tasks × {len(conditions)} conditions", err=True)
    backend = open_local_backend(resolved.path, resolved.alias, settings, 1, "editor")
    started_at, t0 = datetime.now(UTC), time.perf_counter()
    out = out_dir or default_out_dir("repo", backend.name, started_at)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / "results.jsonl"  # appended as records come, so a stopped run keeps its results
    partial.write_text("", encoding="utf-8")
    done = [0]

    def note(r: RepoRecord) -> None:
        with open(partial, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
        done[0] += 1
        mark = "=" if r.exact else ("~" if r.target_hit else "x")
        click.echo(
            f"[{done[0]}/{len(tasks) * len(conditions)}] {r.condition:<9} {mark} {r.task_id}", err=True
        )

    try:
        lines = (None if window[0] < 0 else window[0], None if window[1] < 0 else window[1])
        records = run_tasks(
            backend.model, roots, tasks, conditions, max_tokens=max_tokens, window=lines, on_record=note
        )
    finally:
        backend.close()
    suites = _score_tests(records, tasks, roots) if run_tests is not False else {}
    by = repo_report.summarise(records, conditions)
    summary: dict[str, Any] = {
        "benchmark": "eval-repo",
        "model": backend.name,
        "model_info": backend.describe(),
        "packages": [{k: str(v) if k == "root" else v for k, v in p.items()} for p in packages],
        "selection": {"seed": seed, "limit": limit, "n_tasks": len(tasks), "available": available},
        "conditions": by,
        "verdict": repo_report.verdict(by),
        "protocol": {
            "task": "one masked line (after its indentation) using a name defined only in another file",
            "decoding": f"greedy, at most {max_tokens} tokens, FIM through CodeModel.stream",
            "window": f"{window[0]} lines before and {window[1]} after the masked line (-1: all)",
            "guards": ", ".join(k for k, v in REPO_GUARDS.items() if v),
            "n_ctx": backend.model.engine.n_ctx,
            "recent": "the lines around the definition in file B are noted as this client's recent edit",
            "pass@1": "the package's tests that pass on the released code, run in the eval sandbox "
            "with the completion's first line in place; over the tasks whose line they cover (the "
            "line with its identifier renamed fails them)"
            if suites
            else "not run (--no-tests)",
        },
        "tests": repo_tests.describe(suites),
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": time.perf_counter() - t0,
    }
    summary["report"] = str(out / "report.md")
    repo_report.write(out, summary, records)
    if as_json:
        emit_json(summary)
    else:
        click.echo(repo_report.table(by))
        if summary["verdict"]:
            click.echo(summary["verdict"])
    click.echo(f"report: {summary['report']}", err=True)


def _score_tests(
    records: list[RepoRecord], tasks: list[Any], roots: list[tuple[str, Path]]
) -> dict[str, repo_tests.PackageTests]:
    click.echo("running the packages' tests on the completions (pass@1)", err=True)
    done = [0]

    def note(task: Any, verdict: repo_tests.TaskTests) -> None:
        done[0] += 1
        state = {None: "no tests", False: "not covered", True: "covered"}[verdict.covered]
        passed = sum(bool(v) for v in verdict.results.values())
        click.echo(f"[tests {done[0]}] {task.task_id}: {state}, {passed} passing", err=True)

    return repo_tests.score_records(records, tasks, roots, on_task=note)


def _rescored(out_dir: Path, records: list[RepoRecord], tests: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r.as_dict(), ensure_ascii=False) + "\n")
    (out_dir / "tests.json").write_text(json.dumps(tests, indent=2) + "\n", encoding="utf-8")
    click.echo(f"scored results: {out_dir / 'results.jsonl'}", err=True)
