"""Every canonical solution passes in the sandbox, and no completion that exits early does.

Checks data, program assembly and sandbox together, in every sandbox mode that works here (as
root: "root-drop", "userns" and the unisolated "none"). All 164 HumanEval tasks take 10-13 s per
mode and set on the shared 2-core development machine (2 workers), so this is not marked slow.
"""

from __future__ import annotations

import pytest

from cgstudio.core.errors import UsageError
from cgstudio.evaluation import sandbox
from cgstudio.evaluation.datasets import get_tasks
from cgstudio.evaluation.sandbox import IsolationMode
from cgstudio.evaluation.scoring import evaluate, score_canonical

MODES: list[IsolationMode] = [
    *(m for m in sandbox.candidate_modes() if sandbox.check_isolation(m) is None),
    "none",
]
# Each ends the interpreter with status 0; before the harness token, each scored "passed".
EXITS = [
    "exit()",
    "quit()",
    "import sys; sys.exit(0)",
    "import sys; sys.exit()",
    "import os; os._exit(0)",
    "raise SystemExit",
    "raise SystemExit(0)",
]


def exit_completion(index: int) -> str:
    """An early exit: in the function body (it runs when check() calls the function) for even
    indexes, at module level (before check() is even defined) for odd ones."""
    call = EXITS[index % len(EXITS)]
    return f"    {call}\n" if index % 2 == 0 else f"\n{call}\n"


@pytest.mark.parametrize("mode", MODES)
def test_all_humaneval_canonical_solutions_pass(mode: IsolationMode) -> None:
    result = score_canonical("humaneval", isolation=mode)
    assert result == {
        "task": "humaneval",
        "model": "canonical",
        "n_tasks": 164,
        "pass_at_1": 1.0,
        "passed": 164,
        "failed": 0,
        "timed_out": 0,
        "error": 0,
    }


@pytest.mark.parametrize("mode", MODES)
def test_no_humaneval_task_passes_by_exiting(mode: IsolationMode) -> None:
    tasks = get_tasks("humaneval")
    outcomes = evaluate(tasks, (exit_completion(i) for i in range(len(tasks))), isolation=mode)
    statuses = [o.status for o in outcomes]
    assert statuses.count("passed") == 0, [
        t.task_id for t, s in zip(tasks, statuses, strict=True) if s == "passed"
    ]
    assert statuses.count("failed") == 164
    # The module-level exits end with status 0, and are failed only for lack of the token.
    assert all("not a pass" in o.stderr_tail for o in outcomes[1::2])


@pytest.mark.parametrize("task_set", ["infill-single", "infill-multi"])
def test_infilling_canonical_solutions_pass(task_set: str) -> None:
    # A sample (all of them take ~40 s and ~4 min); it checks that suffixes assemble into valid code.
    result = score_canonical(task_set, limit=40)
    assert (result["n_tasks"], result["passed"], result["pass_at_1"]) == (40, 40, 1.0)


def test_unknown_task_set_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        score_canonical("humaneval-x")
