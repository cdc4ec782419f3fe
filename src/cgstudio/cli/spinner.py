"""A transient status line on stderr while nothing else shows progress.

"Loading qwen2.5-coder-0.5b… 3.2 s", then "evaluating prompt (1,948 tokens)… 0.4 s": drawn only
when stderr is a terminal, redrawn ten times a second by a daemon thread, and erased before the
first token is printed. Nothing is written to stdout, so ``--json`` output is never touched.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ERASE = "\r\x1b[K"  # carriage return, then clear to the end of the line


class Spinner:
    """``show(label)`` starts or relabels the line (its clock restarts); ``stop()`` erases it."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None, interval_s: float = 0.1):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.interval_s = interval_s
        self._label = ""
        self._t0 = 0.0
        self._frame = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False

    def show(self, label: str) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._label, self._t0 = label, time.perf_counter()
            self._draw()
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="cgstudio-spinner", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Erase the line; safe to call when nothing is shown, and more than once."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join()
        with self._lock:
            if self._drawn:
                self.stream.write(ERASE)
                self.stream.flush()
                self._drawn = False

    def __enter__(self) -> Spinner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval_s):
            with self._lock:
                self._draw()

    def _draw(self) -> None:  # holds the lock
        self._frame = (self._frame + 1) % len(FRAMES)
        elapsed = time.perf_counter() - self._t0
        self.stream.write(f"{ERASE}{FRAMES[self._frame]} {self._label} {elapsed:.1f} s")
        self.stream.flush()
        self._drawn = True
