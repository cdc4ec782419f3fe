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
    lower_is_better: bool = False  # the target is a ceiling (a latency), not a floor

    def verdict(self) -> str:
        """``met`` when the whole spread is on the target's good side, ``missed`` when all of it
        is on the other, else ``within spread``."""
        if self.target is None or self.value.n == 0:
            return "n/a"
        lo, hi = self.value.lo, self.value.hi
        worst, best = (hi, lo) if self.lower_is_better else (lo, hi)
        if self._good(worst):
            return "met"
        if not self._good(best):
            return "missed"
        return "within spread"

    def _good(self, v: float) -> bool:
        assert self.target is not None
        return v <= self.target if self.lower_is_better else v >= self.target

    def target_text(self) -> str:
        """The target with its direction: ``≥ 0.95`` or ``≤ 2.0``; ``n/a`` without one."""
        if self.target is None:
            return "n/a"
        return f"{'≤' if self.lower_is_better else '≥'} {self.target}"

    def as_dict(self) -> dict[str, object]:
        return {
            **self.value.as_dict(),
            "target": self.target,
            "lower_is_better": self.lower_is_better,
            "verdict": self.verdict(),
        }
