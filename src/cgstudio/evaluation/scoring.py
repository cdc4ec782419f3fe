"""Functional-correctness scoring: the unbiased pass@k estimator and sandboxed test runs."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Literal

from cgstudio.evaluation.datasets import Task, get_tasks
from cgstudio.evaluation.sandbox import IsolationMode, Limits, Outcome, run_many


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k estimate for one task from ``n`` samples of which ``c`` passed.

    Chen et al. 2021 ("Evaluating Large Language Models Trained on Code"), eq. 1:
    ``1 - C(n - c, k) / C(n, k)``, computed as a product to stay exact for large ``n``.
    Needs ``0 <= c <= n`` and ``1 <= k <= n``.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0  # every draw of k samples contains a correct one
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean pass@k over tasks, given ``(n, c)`` per task (samples, correct samples)."""
    estimates = [pass_at_k(n, c, k) for n, c in counts]
    if not estimates:
        raise ValueError("no tasks to average")
    return sum(estimates) / len(estimates)


def build_program(task: Task, completion: str) -> str:
    """The program that checks ``completion`` for ``task``: the HumanEval(-infilling) harness text."""
    return task.prompt + completion + task.suffix + "\n" + task.test + "\n" + f"check({task.entry_point})\n"


def evaluate(
    tasks: list[Task],
    completions: Iterable[str],
    workers: int = 2,
    limits: Limits | None = None,
    on_result: Callable[[int, Outcome], None] | None = None,
    isolation: IsolationMode | Literal["auto"] = "auto",
) -> list[Outcome]:
    """Run ``completions[i]`` against ``tasks[i]`` in the sandbox (``workers`` parallel processes).

    ``completions`` may be a generator; each test starts as soon as its completion arrives.
    Returns outcomes in task order. ``isolation`` forces a sandbox mode (default: the strongest).
    """
    programs = (build_program(task, completion) for task, completion in zip(tasks, completions, strict=True))
    return run_many(programs, workers=workers, limits=limits, isolation=isolation, on_result=on_result)


def score_canonical(
    task_set_name: str,
    limit: int | None = None,
    workers: int = 2,
    limits: Limits | None = None,
    isolation: IsolationMode | Literal["auto"] = "auto",
) -> dict[str, Any]:
    """Run the canonical solutions of a task set (first ``limit`` tasks, default all) in the sandbox.

    A sanity check of the data and the harness: every one should pass. Returns
    ``{task, model: "canonical", n_tasks, pass_at_1, passed, failed, timed_out, error}`` where
    the last four are task counts and ``pass_at_1`` is the fraction passed (one sample per task).
    Raises ``UsageError`` for an unknown task set.
    """
    tasks = get_tasks(task_set_name)
    if limit is not None:
        tasks = tasks[: max(0, limit)]
    outcomes = evaluate(
        tasks, (task.canonical_solution for task in tasks), workers, limits, isolation=isolation
    )
    counts = Counter(outcome.status for outcome in outcomes)
    return {
        "task": task_set_name,
        "model": "canonical",
        "n_tasks": len(tasks),
        "pass_at_1": counts["passed"] / len(tasks) if tasks else 0.0,
        "passed": counts["passed"],
        "failed": counts["failed"],
        "timed_out": counts["timed_out"],
        "error": counts["error"],
    }
