"""Streaming text plumbing: UTF-8-safe detokenization and stop strings with hold-back."""

from __future__ import annotations

import codecs
from collections import deque
from collections.abc import Iterable

from cgstudio.core.errors import InvalidInputError

# Bounds on request stop strings (every dialect, the CLI and the Python API). OpenAI allows 4;
# these are generous for editors and keep building the matcher cheap.
MAX_STOP_STRINGS = 64
MAX_STOP_CHARS = 512


def check_stop_strings(stops: Iterable[str]) -> list[str]:
    """The non-empty stop strings, or InvalidInputError beyond MAX_STOP_STRINGS x MAX_STOP_CHARS."""
    items = [s for s in stops if s]
    if len(items) > MAX_STOP_STRINGS:
        raise InvalidInputError(
            f"{len(items)} stop strings; the limit is {MAX_STOP_STRINGS}. Send the few that end an answer."
        )
    for s in items:
        if len(s) > MAX_STOP_CHARS:
            raise InvalidInputError(
                f"a stop string is {len(s):,} characters; the limit is {MAX_STOP_CHARS}. "
                "Use a short marker that ends the answer."
            )
    return items


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

    All stop strings share one Aho-Corasick automaton, so each new character costs O(1)
    amortized however many or long the stop strings are. The automaton's depth is exactly
    the text to hold back: the longest tail of the output that begins some stop string.
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self._pending = ""
        self.matched: str | None = None
        self.matched_at_start = False
        self._emitted_any = False
        # Per trie node: its edges, failure link, depth, and the longest stop string (index)
        # that ends there, itself or along its failure links (-1: none).
        self._goto: list[dict[str, int]] = [{}]
        self._fail = [0]
        self._depth = [0]
        self._out = [-1]
        self._state = 0
        self._build()

    def _build(self) -> None:
        for index, s in enumerate(self.stops):
            node = 0
            for ch in s:
                nxt = self._goto[node].get(ch)
                if nxt is None:
                    nxt = len(self._goto)
                    self._goto[node][ch] = nxt
                    self._goto.append({})
                    self._fail.append(0)
                    self._depth.append(self._depth[node] + 1)
                    self._out.append(-1)
                node = nxt
            if self._out[node] < 0:  # a repeated stop string keeps its first index
                self._out[node] = index
        queue = deque(self._goto[0].values())  # depth-1 nodes fail to the root
        while queue:
            node = queue.popleft()
            for ch, child in self._goto[node].items():
                queue.append(child)
                f = self._fail[node]
                while f and ch not in self._goto[f]:
                    f = self._fail[f]
                self._fail[child] = self._goto[f].get(ch, 0)
                if self._out[child] < 0:
                    self._out[child] = self._out[self._fail[child]]

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit, stopped)."""
        if not self.stops:
            self._emitted_any = self._emitted_any or bool(text)
            return text, False
        buf = self._pending + text
        goto, fail, out = self._goto, self._fail, self._out
        state = self._state
        best: tuple[int, int] | None = None  # (start in buf, stop index); the earliest start wins
        for i, ch in enumerate(text, len(self._pending)):
            while state and ch not in goto[state]:
                state = fail[state]
            state = goto[state].get(ch, 0)
            hit = out[state]
            if hit >= 0:
                start = i + 1 - len(self.stops[hit])
                if best is None or start < best[0]:
                    best = (start, hit)
        if best is not None:
            self.matched = self.stops[best[1]]
            emitted = buf[: best[0]]
            self.matched_at_start = not self._emitted_any and not emitted
            self._pending, self._state = "", 0
            return emitted, True
        self._state = state
        hold = self._depth[state]
        emitted, self._pending = buf[: len(buf) - hold], buf[len(buf) - hold :]
        self._emitted_any = self._emitted_any or bool(emitted)
        return emitted, False

    def flush(self) -> str:
        out, self._pending, self._state = self._pending, "", 0
        return out
