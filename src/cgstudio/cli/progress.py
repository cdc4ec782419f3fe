"""Eval progress on stderr: a rich bar on a terminal, periodic lines in a log file."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cgstudio.evaluation.runner import ProgressSink


def make_progress(label: str) -> ProgressSink:
    return _RichProgress(label) if sys.stderr.isatty() else _LineProgress(label)


class _RichProgress:
    def __init__(self, label: str) -> None:
        # Imported here: rich costs start-up time that the other commands do not pay.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.label = label
        self.progress = Progress(
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

    def start(self, total: int, cached: int) -> None:
        if cached:
            self.progress.console.print(f"{cached} of {total} completions from the cache")
        self.progress.start()
        self.gen = self.progress.add_task(f"{self.label}: generate", total=total)
        self.test = self.progress.add_task("test (passed 0)", total=total)

    def generated(self, cached: bool) -> None:
        self.progress.advance(self.gen)

    def tested(self, status: str, passed: int, done: int) -> None:
        self.progress.update(self.test, advance=1, description=f"test (passed {passed}/{done})")

    def stop(self) -> None:
        self.progress.stop()


class _LineProgress:
    """For logs: a line every 30 s (and at the end) with counts, the rate of new completions and an ETA."""

    EVERY_S = 30.0

    def __init__(self, label: str) -> None:
        self.label = label
        self.total = self.cached = self.generated_n = self.new = self.tested_n = self.passed = 0
        self.t0 = self.last = time.monotonic()
        self._said: tuple[int, int] | None = None

    def start(self, total: int, cached: int) -> None:
        self.total, self.cached = total, cached
        self._say(f"start: {cached} of {total} completions from the cache")

    def generated(self, cached: bool) -> None:
        self.generated_n += 1
        self.new += not cached
        if time.monotonic() - self.last >= self.EVERY_S:
            self._status()

    def tested(self, status: str, passed: int, done: int) -> None:
        self.tested_n, self.passed = done, passed

    def stop(self) -> None:
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
