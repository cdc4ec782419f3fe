"""pass@k and program assembly."""

from __future__ import annotations

import math
from itertools import combinations

import pytest

from cgstudio.evaluation.datasets import Task
from cgstudio.evaluation.scoring import build_program, mean_pass_at_k, pass_at_k


def _brute_force(n: int, c: int, k: int) -> float:
    # Probability that a random k-subset of n samples (c correct) contains a correct one.
    samples = [True] * c + [False] * (n - c)
    subsets = list(combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 0, 1), (5, 1, 1), (5, 2, 3), (6, 3, 2), (7, 7, 4), (8, 1, 8)])
def test_pass_at_k_matches_brute_force(n: int, c: int, k: int) -> None:
    assert math.isclose(pass_at_k(n, c, k), _brute_force(n, c, k), rel_tol=1e-12)


def test_pass_at_1_is_the_fraction_correct() -> None:
    assert pass_at_k(200, 37, 1) == pytest.approx(37 / 200)
    assert mean_pass_at_k([(1, 1), (1, 0), (1, 1), (1, 1)], 1) == 0.75


def test_pass_at_k_rejects_impossible_counts() -> None:
    for n, c, k in [(5, 6, 1), (5, -1, 1), (5, 2, 0), (5, 2, 6)]:
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)
    with pytest.raises(ValueError):
        mean_pass_at_k([], 1)


def test_build_program_is_the_harness_text() -> None:
    task = Task(
        "T/0", "def f():\n", "    return y\n", "    y = 1\n", "def check(fn):\n    assert fn() == 1\n", "f"
    )
    assert build_program(task, "    y = 1\n") == (
        "def f():\n    y = 1\n    return y\n\ndef check(fn):\n    assert fn() == 1\n\ncheck(f)\n"
    )
