"""Every canonical solution passes in the sandbox: checks data, program assembly and sandbox together.

All 164 HumanEval tasks take about 6 s on the 2-core development machine (2 workers), so this is
not marked slow.
"""

from __future__ import annotations

import pytest

from cgstudio.errors import UsageError
from cgstudio.evaluation.scoring import score_canonical


def test_all_humaneval_canonical_solutions_pass() -> None:
    result = score_canonical("humaneval")
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


@pytest.mark.parametrize("task_set", ["infill-single", "infill-multi"])
def test_infilling_canonical_solutions_pass(task_set: str) -> None:
    # A sample (all of them take ~40 s and ~4 min); it checks that suffixes assemble into valid code.
    result = score_canonical(task_set, limit=40)
    assert (result["n_tasks"], result["passed"], result["pass_at_1"]) == (40, 40, 1.0)


def test_unknown_task_set_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        score_canonical("humaneval-x")
