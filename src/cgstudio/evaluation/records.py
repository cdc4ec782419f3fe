"""What a run produces: one ``SampleRecord`` per sample and the ``EvalResult`` that counts them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cgstudio.evaluation.protocol import PASS_AT_K, Style
from cgstudio.evaluation.scoring import mean_pass_at_k


@dataclass
class SampleRecord:
    """One line of results.jsonl: a task's sample, its completion and how its test went."""

    task_id: str
    sample: int
    completion: str  # what the program got (after stop truncation or code extraction)
    finish_reason: str
    generation_s: float
    cached: bool
    completion_tokens: int | None = None
    status: str = "error"
    duration_s: float = 0.0  # the test's wall clock, sandbox start-up included
    stderr_tail: str = ""
    raw: str | None = None  # the model's reply when it differs from the completion (chat)
    warnings: tuple[str, ...] = ()  # warning codes of the generation

    def as_dict(self) -> dict[str, Any]:
        doc = {
            "task_id": self.task_id,
            "sample": self.sample,
            "completion": self.completion,
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "generation_s": round(self.generation_s, 3),
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            "cached": self.cached,
        }
        if self.status != "passed" and self.stderr_tail:
            doc["stderr_tail"] = self.stderr_tail[-500:]
        if self.warnings:
            doc["warnings"] = list(self.warnings)
        if self.raw is not None:
            doc["raw"] = self.raw
        return doc


@dataclass
class EvalResult:
    task_set: str
    style: Style
    records: list[SampleRecord]
    n_tasks: int
    samples: int
    duration_s: float
    skipped_uncached: int = 0
    # What bounded each test's total memory ("cgroup-v2", "cgroup-v1" or "rlimit") -> tests.
    memory_containment: dict[str, int] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.records)

    def warnings(self) -> Counter[str]:
        """Warning codes over all samples (cached ones included), e.g. ``{"repetition": 3}``."""
        return Counter(code for r in self.records for code in r.warnings)

    def pass_at(self) -> dict[str, float]:
        """Mean unbiased pass@k over tasks, for each k in (1, 10, 100) not above the samples."""
        if not self.records:
            return {}
        per_task: dict[str, list[int]] = {}
        for r in self.records:
            per_task.setdefault(r.task_id, []).append(r.status == "passed")
        counts = [(len(v), sum(v)) for v in per_task.values()]
        n = min(len(v) for v in per_task.values())
        return {f"pass@{k}": mean_pass_at_k(counts, k) for k in PASS_AT_K if k <= n}
