"""The run of ``cgstudio eval repo``: each task under each context condition, through the server's
FIM path with repository context (``CodeModel.stream`` with a ``RepoContext``).

Conditions: ``none`` (no workspace: the request as a client without ``--workspace`` sends it),
one source alone (``imports``, ``test``, ``retrieved``, ``recent``) or ``all`` four. They run
interleaved, every condition of a task before the next task, so load on the machine affects them
alike.

The packages are copied into a temporary folder that serves as the workspaces. Before a task,
file A there is replaced by its masked version (the line holds only its indentation, as in an
editor while the line is being typed); the index re-reads it, so neither retrieval nor any other
source can see the answer. After the task the file is put back.

``recent`` simulates a user who has just edited file B at the identifier's definition: the lines
around it are noted in the server's ring buffer (``RecentChunks.note``) for this task's own
client, exactly as an editor request at that spot would note them. Each task and condition has
its own client, so no note of another task (whose text could hold this task's line) is seen.

The request carries a window of file A, as editor clients send one: ``DEFAULT_WINDOW`` lines
before and after the cursor line (the server still finds A's imports in the saved file).
Decoding is greedy; the editor endings are on (``--guards editor``) with ``fim_single_line``, so
a completion ends at the end of its line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cgstudio.core.prompt import ContextReason, Prompt
from cgstudio.evaluation.protocol import EDITOR_GUARDS, sampling_for
from cgstudio.evaluation.repo_scoring import normalise, score_line
from cgstudio.evaluation.repo_tasks import RepoTask, recent_edit
from cgstudio.generation.pipeline import Result
from cgstudio.generation.request import GenerationRequest
from cgstudio.repo import RepoContext
from cgstudio.session.model import CodeModel

CONDITIONS = ("none", "imports", "test", "retrieved", "recent", "all")
CONDITION_SOURCES: dict[str, frozenset[ContextReason]] = {
    "none": frozenset(),
    "imports": frozenset({"import"}),
    "test": frozenset({"test"}),
    "retrieved": frozenset({"retrieved"}),
    "recent": frozenset({"recent"}),
    "all": frozenset({"import", "test", "retrieved", "recent"}),
}
REPO_GUARDS = {**EDITOR_GUARDS, "fim_single_line": True}
DEFAULT_MAX_TOKENS = 64
DEFAULT_WINDOW = (40, 10)  # lines before and after the cursor line that the request carries
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", ".venv", "node_modules", ".tox")


@dataclass
class RepoRecord:
    """One task under one condition: the completion, its scores, its context and its timings."""

    task_id: str
    condition: str
    identifier: str
    kind: str
    def_path: str
    answer: str
    completion: str
    exact: bool
    identifier_em: bool
    identifier_f1: float
    edit_similarity: float
    target_hit: bool
    context_tokens: int
    context: list[dict[str, Any]]
    answer_in_context: bool  # the masked line, whitespace-normalised, occurs in the context text
    ttft_s: float | None
    prompt_tokens_evaluated: int  # after KV reuse
    generation_s: float
    completion_tokens: int
    finish_reason: str
    stop_rule: str | None
    warnings: list[str] = field(default_factory=list)
    tests_covered: bool | None = None  # the package's tests notice this line going wrong (repo_tests)
    tests_passed: bool | None = None  # they pass with the completion; None where not covered

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sampling(max_tokens: int) -> dict[str, Any]:
    """Greedy, as the eval protocol's FIM sampling, with ``max_tokens`` for one line."""
    return {**sampling_for("fim", 0.0, None, 0), "max_tokens": max_tokens}


class Workspaces:
    """Copies of the packages, in one temporary folder, that serve as the workspaces."""

    def __init__(self, packages: Sequence[tuple[str, Path]], base: Path) -> None:
        self.roots: dict[str, Path] = {}
        for i, (name, root) in enumerate(packages):
            dest = base / f"{i:02d}-{name}"
            shutil.copytree(root, dest, symlinks=True, ignore=_IGNORED)
            self.roots[name] = dest.resolve()
        self.context = RepoContext(list(self.roots.values()), min_interval_s=0.0)
        self._stamp = time.time_ns()

    def path(self, task: RepoTask, rel: str | None = None) -> Path:
        return self.roots[task.package] / (rel or task.path)

    @contextmanager
    def masked(self, task: RepoTask) -> Iterator[None]:
        """File A holds the masked text for the duration of the block."""
        target = self.path(task)
        original = target.read_bytes()
        self._write(target, task.masked.encode("utf-8"))
        try:
            yield
        finally:
            self._write(target, original)

    def _write(self, target: Path, data: bytes) -> None:
        target.write_bytes(data)
        # A new modification time every write: the index re-reads a file when (size, mtime) change,
        # and two masks of one file can have the same size.
        self._stamp += 1_000_000
        os.utime(target, ns=(self._stamp, self._stamp))


def run_tasks(
    model: CodeModel,
    packages: Sequence[tuple[str, Path]],
    tasks: Sequence[RepoTask],
    conditions: Sequence[str],
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    window: tuple[int | None, int | None] = DEFAULT_WINDOW,
    on_record: Callable[[RepoRecord], None] | None = None,
) -> list[RepoRecord]:
    """Every task under every condition, interleaved; the model's ``repo`` is restored after."""
    saved = model.repo
    records: list[RepoRecord] = []
    try:
        with tempfile.TemporaryDirectory(prefix="cgstudio-eval-repo-") as tmp:
            spaces = Workspaces(packages, Path(tmp))
            for task in tasks:
                with spaces.masked(task):
                    for condition in conditions:
                        record = _one(model, spaces, task, condition, max_tokens, window)
                        records.append(record)
                        if on_record is not None:
                            on_record(record)
    finally:
        model.repo = saved
    return records


def _one(
    model: CodeModel,
    spaces: Workspaces,
    task: RepoTask,
    condition: str,
    max_tokens: int,
    window: tuple[int | None, int | None],
) -> RepoRecord:
    sources = CONDITION_SOURCES[condition]
    client = f"eval-repo:{task.task_id}:{condition}"
    label = task.path
    if sources:
        ctx = spaces.context
        ctx.sources = sources
        model.repo = ctx
        label = str(spaces.path(task))
        if "recent" in sources:
            b_text = spaces.path(task, task.def_path).read_text(encoding="utf-8")
            before, after = recent_edit(task, b_text)
            ctx.recent.note(client, task.def_path, before, after)
    else:
        model.repo = None
    prefix, suffix = task.window(*window)
    req = GenerationRequest(
        "fim",
        prefix,
        suffix,
        path=label,
        sampling=sampling(max_tokens),
        guards=dict(REPO_GUARDS),
        client=client,
    )
    seen: list[Prompt] = []
    result: Result | None = None
    for chunk in model.stream(req, on_prompt=seen.append):
        result = chunk.result or result
    assert result is not None
    context_text = ""
    if seen and seen[0].context_span[1] > seen[0].context_span[0]:
        start, end = seen[0].context_span
        context_text = model.engine.detokenize(seen[0].tokens[start:end])
    score = score_line(result.text, task.answer, task.identifier)
    timings = result.timings
    return RepoRecord(
        task_id=task.task_id,
        condition=condition,
        identifier=task.identifier,
        kind=task.kind,
        def_path=task.def_path,
        answer=task.answer,
        completion=result.text,
        exact=score.exact,
        identifier_em=score.identifier_em,
        identifier_f1=score.identifier_f1,
        edit_similarity=score.edit_similarity,
        target_hit=score.target_hit,
        context_tokens=timings.context_tokens,
        context=[{"path": e.path, "tokens": e.tokens, "reason": e.reason} for e in seen[0].context]
        if seen
        else [],
        answer_in_context=bool(context_text) and normalise(task.answer) in normalise(context_text),
        ttft_s=timings.time_to_first_token_s,
        prompt_tokens_evaluated=timings.prompt_tokens_evaluated,
        generation_s=timings.total_s,
        completion_tokens=result.usage.completion_tokens,
        finish_reason=result.finish_reason,
        stop_rule=result.stop_rule,
        warnings=[f"{w.code}: {w.message}" for w in result.warnings],
    )
