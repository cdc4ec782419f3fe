"""FIM post-processing for editors, applied to whole lines as they complete.

Each rule returns the length of output to keep once it decides to stop:
  * suffix overlap: the completion starts repeating the first line(s) of the suffix;
  * single line: at most one line;
  * block end: a line indented less than the cursor's block ends the completion.
A cut at the suffix also drops the blank lines before it (the suffix brings its own), and at
the end a trailing partial line that merely starts a suffix line is dropped (``finish``).
``settled`` says how much of the output no rule can cut any more: only that much is streamed,
so streamed text never shows what the final text drops.
"""

from __future__ import annotations

from dataclasses import dataclass


def _repeats(line: str, suffix_line: str) -> bool:
    """``line`` restates a suffix line: equal, or starts with a long one (a trailing comment added)."""
    if len(suffix_line) < 4:
        return False
    return line == suffix_line or (len(suffix_line) >= 12 and line.startswith(suffix_line))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass
class FimRules:
    suffix: str
    prefix_tail: str
    stop_at_suffix: bool = True
    single_line: bool = False
    block_end: bool = False

    def __post_init__(self) -> None:
        lines = [ln for ln in self.suffix.split("\n") if ln.strip()]
        self._suffix_lines = [ln.strip() for ln in lines[:3]]
        self._cursor_line = self.prefix_tail.rsplit("\n", 1)[-1]
        self._block_indent: int | None = None  # known once the first non-blank line is complete
        self._text = ""
        self._line_starts = [0]
        self._candidate: int | None = None
        self._active = bool(self.stop_at_suffix and self._suffix_lines) or self.single_line or self.block_end
        self._fed = 0

    def feed(self, delta: str) -> int | None:
        """Add output text; return the number of characters to keep if a rule stops here."""
        self._fed += len(delta)
        if not self._active:
            return None
        base = len(self._text)
        self._text += delta
        for off, ch in enumerate(delta):
            if ch == "\n":
                end = base + off
                cut = self._on_line(len(self._line_starts) - 1, self._line_starts[-1], end)
                self._line_starts.append(end + 1)
                if cut is not None:
                    return cut
        return None

    def _on_line(self, index: int, start: int, end: int) -> int | None:
        line = self._text[start:end]
        if self.single_line and line.strip():
            return end
        if self.block_end and line.strip():
            if self._block_indent is None:
                # Line 0 continues the cursor line; on a blank cursor line the first code line's
                # indentation (cursor whitespace included) is the block's.
                if index == 0 and self._cursor_line.strip():
                    self._block_indent = _indent(self._cursor_line)
                else:
                    head = self._cursor_line if index == 0 else ""
                    self._block_indent = _indent(head + line)
            elif _indent(line) < self._block_indent:
                return start
        if self.stop_at_suffix and self._suffix_lines:
            if self._candidate is not None:
                cut, self._candidate = self._candidate, None
                if line.strip() == self._suffix_lines[1]:
                    return self._trim(cut)
            stripped = line.strip()
            if stripped == self._suffix_lines[0] and len(stripped) < 4:
                # A short first suffix line ("}", ")") also closes inner blocks: need the next line too.
                if len(self._suffix_lines) > 1:
                    self._candidate = start
            elif any(_repeats(stripped, s) for s in self._suffix_lines):
                return self._trim(start)
        return None

    def settled(self) -> int:
        """How many characters of the output fed so far no rule can cut any more (safe to stream).

        Held back: trailing blank space (a cut at the suffix drops the blank lines before it), a
        short suffix line whose cut waits for the next line, and a partial line that a rule may
        still cut when it completes or when the output ends.
        """
        if not self._active:
            return self._fed
        start = self._line_starts[-1]
        limit = len(self._text)
        if self._candidate is not None:
            limit = self._candidate
        elif self._undecided(self._text[start:]):
            limit = start
        while limit > 0 and self._text[limit - 1] in " \t\n":
            limit -= 1
        return limit

    def _undecided(self, partial: str) -> bool:
        """A rule may still cut the partial last line ``partial`` (its stripped text decides)."""
        text = partial.strip()
        if not text:
            return False  # blank so far: held as trailing blank space
        if self.block_end and self._block_indent is not None and _indent(partial) < self._block_indent:
            return True
        return self.stop_at_suffix and any(
            s.startswith(text) or (len(s) >= 12 and text.startswith(s)) for s in self._suffix_lines
        )

    def finish(self) -> int | None:
        """At the end of generation: drop a trailing partial line that only starts a suffix line."""
        if not self.stop_at_suffix or not self._suffix_lines:
            return None
        start = self._line_starts[-1]
        tail = self._text[start:].strip()
        if len(tail) >= 4 and any(s.startswith(tail) for s in self._suffix_lines):
            return self._trim(start)
        return None

    def _trim(self, cut: int) -> int:
        """Drop blank lines before a cut at the suffix; keep one newline unless the suffix starts with one."""
        kept = self._text[:cut]
        body = kept.rstrip(" \t\n")
        if len(body) == len(kept):
            return cut
        ends_line = "\n" in kept[len(body) :] and not self.suffix.startswith("\n")
        return len(body) + (1 if ends_line else 0)
