"""Eval progress on stderr: a rich bar on a terminal, periodic lines in a log file.

The display exists from the start of ``eval run``: loading the model and the first completion
(whose prompt is evaluated cold) are phases with a clock, so minutes of work never look like a
hang. ``phase(text)`` names what is happening before the counts begin; calling the display with
a label (what ``EvalJob`` does) gives the ``ProgressSink`` for the run, the same object.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import click

if TYPE_CHECKING:
    from cgstudio.evaluation.runner import ProgressSink


FIRST = "first completion (cold prompt)"


def make_progress(label: str, *, cold_start: bool = False) -> EvalProgress:
    """The display for ``eval run``; ``cold_start``: a model generates, so the first new
    completion (its prompt evaluated cold) is a phase of its own."""
    cls = _RichProgress if sys.stderr.isatty() else _LineProgress
    return cls(label, cold_start)


class EvalProgress(Protocol):
    def __call__(self, label: str) -> ProgressSink: ...

    def phase(self, text: str) -> None: ...

    def start(self, total: int, cached: int) -> None: ...

    def generated(self, cached: bool) -> None: ...

    def tested(self, status: str, passed: int, done: int) -> None: ...

    def stop(self) -> None: ...


class _RichProgress:
    def __init__(self, label: str, cold_start: bool = False) -> None:
        # Imported here: rich costs start-up time that the other commands do not pay.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.label = label
        self.cold_start = cold_start
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.gen: Any = None
        self.test: Any = None
        self.step: Any = None  # the current phase's line (no total: a pulsing bar and a clock)
        self.running = False

    def __call__(self, label: str) -> _RichProgress:
        self.label = label
        return self

    def phase(self, text: str) -> None:
        if not self.running:
            self.progress.start()
            self.running = True
        if self.step is not None:
            self.progress.remove_task(self.step)
        self.step = self.progress.add_task(text, total=None)

    def start(self, total: int, cached: int) -> None:
        if cached:
            self.progress.console.print(f"{cached} of {total} completions from the cache")
        if self.cold_start and cached < total:
            self.phase(FIRST)
        elif not self.running:
            self.progress.start()
            self.running = True
        self.gen = self.progress.add_task(f"{self.label}: generate", total=total)
        self.test = self.progress.add_task("test (passed 0)", total=total)

    def generated(self, cached: bool) -> None:
        if not cached and self.step is not None:
            self.progress.remove_task(self.step)  # the first new completion is done
            self.step = None
        self.progress.advance(self.gen)

    def tested(self, status: str, passed: int, done: int) -> None:
        self.progress.update(self.test, advance=1, description=f"test (passed {passed}/{done})")

    def stop(self) -> None:
        if self.step is not None:
            self.progress.remove_task(self.step)
            self.step = None
        if self.running:
            self.progress.stop()
            self.running = False


class _LineProgress:
    """For logs: a line every 30 s (and at the end) with counts, the rate of new completions and an ETA."""

    EVERY_S = 30.0

    def __init__(self, label: str, cold_start: bool = False) -> None:
        self.label = label
        self.cold_start = cold_start
        self.started = False
        self.total = self.cached = self.generated_n = self.new = self.tested_n = self.passed = 0
        self.t0 = self.last = time.monotonic()
        self._said: tuple[int, int] | None = None
        self._phase: tuple[str, float] | None = None

    def __call__(self, label: str) -> _LineProgress:
        self.label = label
        return self

    def phase(self, text: str) -> None:
        self._end_phase()
        self._phase = (text, time.monotonic())
        self._say(f"{text}…")

    def _end_phase(self) -> None:
        if self._phase is not None:
            text, t0 = self._phase
            self._phase = None
            self._say(f"{text}: done in {time.monotonic() - t0:.1f} s")

    def start(self, total: int, cached: int) -> None:
        self._end_phase()
        self.total, self.cached, self.started = total, cached, True
        self.t0 = self.last = time.monotonic()  # rates count from here, not from the model load
        self._say(f"start: {cached} of {total} completions from the cache")
        if self.cold_start and cached < total:
            self.phase(FIRST)

    def generated(self, cached: bool) -> None:
        self.generated_n += 1
        self.new += not cached
        if not cached and self._phase is not None:
            self._end_phase()
            self._status()  # the first new completion: say so now, not in 30 s
        elif time.monotonic() - self.last >= self.EVERY_S:
            self._status()

    def tested(self, status: str, passed: int, done: int) -> None:
        self.tested_n, self.passed = done, passed

    def stop(self) -> None:
        self._phase = None
        if self.started:
            self._status()

    def _status(self) -> None:
        state = (self.generated_n, self.tested_n)
        if state == self._said:
            return
        self._said = state
        self.last = now = time.monotonic()
        rate = self.new / (now - self.t0) if self.new else 0.0
        left = self.total - self.generated_n
        eta = f"{left / rate / 60:.0f} min" if rate > 0 else "?"
        self._say(
            f"generated {self.generated_n}/{self.total} ({self.new} new, {rate * 60:.1f}/min), "
            f"tested {self.tested_n}, passed {self.passed}, ETA {eta}"
        )

    def _say(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        click.echo(f"[{stamp}] {self.label}: {text}", err=True)
