"""Medians and spreads. Ratios come from interleaved pairs (A B A B ...), so drift cancels."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    lo: float  # min over trials
    hi: float  # max over trials
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.lo, "max": self.hi, "n": self.n}

    def fmt(self, unit: str = "", digits: int = 2) -> str:
        return f"{self.median:.{digits}f}{unit} [{self.lo:.{digits}f}–{self.hi:.{digits}f}] (n={self.n})"


def summarize(values: list[float]) -> Summary:
    vals = [v for v in values if v is not None]
    if not vals:
        return Summary(float("nan"), float("nan"), float("nan"), 0)
    return Summary(statistics.median(vals), min(vals), max(vals), len(vals))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 100]."""
    vals = sorted(values)
    if not vals:
        return float("nan")
    k = max(0, min(len(vals) - 1, round(q / 100 * len(vals) + 0.5) - 1))
    return vals[k]


def ratio(numer: list[float], denom: list[float]) -> Summary:
    """Per-pair ratios of interleaved trials; the median is the reported ratio, min-max its spread."""
    pairs = [a / b for a, b in zip(numer, denom, strict=False) if a and b]
    return summarize(pairs)


@dataclass(frozen=True)
class Ratio:
    key: str
    value: Summary
    target: float | None

    def verdict(self) -> str:
        if self.target is None or self.value.n == 0:
            return "n/a"
        if self.value.lo >= self.target:
            return "met"
        if self.value.hi < self.target:
            return "missed"
        return "within spread"

    def as_dict(self) -> dict[str, object]:
        return {**self.value.as_dict(), "target": self.target, "verdict": self.verdict()}
