"""Streaming text plumbing: UTF-8-safe detokenization and stop strings with hold-back."""

from __future__ import annotations

import codecs


class Utf8Stream:
    """Bytes in, whole characters out: a character split over tokens is held until complete."""

    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._dec.decode(data, final=False)

    def flush(self) -> str:
        return self._dec.decode(b"", final=True)


class StopMatcher:
    """Finds stop strings across chunk boundaries.

    Text that could still be the start of a stop string is held back until decided,
    so a stop string never leaks into the output, even partially.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._pending = ""
        self.matched: str | None = None
        self.matched_at_start = False
        self._emitted_any = False

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit, stopped)."""
        if not self.stops:
            self._emitted_any = self._emitted_any or bool(text)
            return text, False
        buf = self._pending + text
        best: tuple[int, str] | None = None
        for s in self.stops:
            i = buf.find(s)
            if i >= 0 and (best is None or i < best[0]):
                best = (i, s)
        if best is not None:
            self.matched = best[1]
            out = buf[: best[0]]
            self.matched_at_start = not self._emitted_any and not out
            self._pending = ""
            return out, True
        hold = self._holdback(buf)
        out, self._pending = buf[: len(buf) - hold], buf[len(buf) - hold :]
        self._emitted_any = self._emitted_any or bool(out)
        return out, False

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out

    def _holdback(self, buf: str) -> int:
        longest = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), longest, -1):
                if buf.endswith(s[:k]):
                    longest = k
                    break
        return longest
