"""FIM post-processing for editors, applied to whole lines as they complete.

Each rule returns the length of output to keep once it decides to stop, and names itself in
``rule`` (the stop reason's detail):
  * ``suffix_overlap``: the completion starts repeating the first line(s) of the suffix;
  * ``single_line``: at most one line;
  * ``block_end``: a line indented less than the cursor's block ends the completion (indentation
    languages); in brace languages, the ``}`` that closes the block the cursor is in (kept);
  * ``line_end``: a mid-line cursor (text before and after it on its line) completes that line
    only, without re-typing the rest of the line;
  * ``bracket_overlap``: the completion closes a bracket or quote opened before the cursor that
    the suffix closes too: it ends before that closer (and before any suffix text it re-typed on
    the way). Brackets and strings are tracked by ``brackets.Scanner``.
A cut at the suffix also drops the blank lines before it (the suffix brings its own), and at
the end a trailing partial line that merely starts a suffix line is dropped (``finish``).
``settled`` says how much of the output no rule can cut any more: only that much is streamed,
so streamed text never shows what the final text drops.
"""

from __future__ import annotations

from dataclasses import dataclass

from cgstudio.generation.brackets import BlockStyle, Closer, Scanner, open_string, suffix_closer


def _repeats(line: str, suffix_line: str) -> bool:
    """``line`` restates a suffix line: equal, or starts with a long one (a trailing comment added)."""
    if len(suffix_line) < 4:
        return False
    return line == suffix_line or (len(suffix_line) >= 12 and line.startswith(suffix_line))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _first_indent(suffix: str, skip_first: bool) -> int:
    """The indentation of the suffix's first code line (0 when none); ``skip_first``: the suffix's
    first line is the rest of a cursor line with text, not a line of its own."""
    lines = suffix.split("\n")[1:] if skip_first else suffix.split("\n")
    return next((_indent(ln) for ln in lines if ln.strip()), 0)


@dataclass
class FimRules:
    suffix: str
    prefix_tail: str
    stop_at_suffix: bool = True
    single_line: bool = False
    block_end: bool = False
    line_end: bool = False  # a mid-line cursor completes its line only
    closers: bool = False  # bracket_overlap: never re-type a closer the suffix already has
    style: BlockStyle = "indent"  # how blocks end: indentation or braces (brackets.block_style)
    comment: str = "#"  # the line-comment marker the bracket scanner skips

    def __post_init__(self) -> None:
        lines = [ln for ln in self.suffix.split("\n") if ln.strip()]
        self._suffix_lines = [ln.strip() for ln in lines[:3]]
        self._cursor_line = self.prefix_tail.rsplit("\n", 1)[-1]
        self._block_indent: int | None = None  # known once the first non-blank line is complete
        self._text = ""
        self._line_starts = [0]
        self._candidate: int | None = None
        self.rule: str | None = None  # the rule that cut the output, once one has
        rest = self.suffix.split("\n", 1)[0]
        self._mid_line = self.line_end and bool(rest.strip()) and bool(self._cursor_line.strip())
        self._rest = rest.rstrip() if self._mid_line else ""
        self._indent_rule = self.block_end and self.style == "indent"
        self._suffix_indent = _first_indent(self.suffix, skip_first=bool(self._cursor_line.strip()))
        self._scanner: Scanner | None = None
        self._closer: Closer | None = None  # the suffix's enclosing closer
        if self.closers or (self.block_end and self.style == "brace"):
            in_string = open_string(self._cursor_line, self.comment)
            self._scanner = Scanner(self.comment, in_string)
            self._closer = suffix_closer(self.suffix, self.comment, in_string)
        # Text before the suffix's closer on its line, which a completion may re-type before its own.
        before = self.suffix[: self._closer.offset] if self._closer is not None else ""
        self._before_closer = before if self.closers and "\n" not in before else ""
        self._active = (
            bool(self.stop_at_suffix and self._suffix_lines)
            or self.single_line
            or self.block_end
            or self._mid_line
            or self.closers
        )
        self._fed = 0

    def feed(self, delta: str) -> int | None:
        """Add output text; return the number of characters to keep if a rule stops here."""
        self._fed += len(delta)
        if not self._active:
            return None
        base = len(self._text)
        self._text += delta
        for off, ch in enumerate(delta):
            hit = self._scanner.feed(ch) if self._scanner is not None else None
            if hit is not None and (cut := self._on_closer(hit.char, base + off)) is not None:
                return cut
            if ch == "\n":
                end = base + off
                cut = self._on_line(len(self._line_starts) - 1, self._line_starts[-1], end)
                self._line_starts.append(end + 1)
                if cut is not None:
                    return cut
        return None

    def _stop(self, rule: str, cut: int) -> int:
        self.rule = rule
        return cut

    def _on_closer(self, char: str, pos: int) -> int | None:
        """A closer at ``pos`` closes a bracket or string opened before the cursor."""
        if self.closers and self._closer is not None and self._closer.char == char:
            cut, before = pos, self._before_closer
            line_start = self._text.rfind("\n", 0, pos) + 1
            if before and cut - len(before) >= line_start and self._text[:cut].endswith(before):
                cut -= len(before)  # "x, b)" before the suffix "b)": the "b" was re-typed too
            if "\n" in self._text[:cut][len(self._text[:cut].rstrip(" \t\n")) :]:
                cut = self._trim(cut)  # blank lines before the closer: the suffix brings its own
            return self._stop("bracket_overlap", cut)
        if self.block_end and self.style == "brace" and char == "}":
            return self._stop("block_end", pos + 1)
        return None

    def _on_line(self, index: int, start: int, end: int) -> int | None:
        line = self._text[start:end]
        if self._mid_line and index == 0:
            return self._stop("line_end", self._line_cut(start, end))
        if self.single_line and line.strip():
            return self._stop("single_line", end)
        if self._indent_rule and line.strip():
            if self._block_indent is None:
                # Line 0 continues the cursor line; on a blank cursor line the first code line's
                # indentation (cursor whitespace included) is the block's.
                if index == 0 and self._cursor_line.strip():
                    indent = _indent(self._cursor_line)
                else:
                    head = self._cursor_line if index == 0 else ""
                    indent = _indent(head + line)
                # Code after the cursor that goes on at a smaller indentation, still inside a
                # definition (above 0), widens the block down to it: the hole may close inner blocks
                # (a loop body, then the line after the loop). Never to the top level, where a
                # completion would go on to write the next function.
                below = self._suffix_indent
                self._block_indent = min(indent, below) if below else indent
            elif _indent(line) < self._block_indent:
                return self._stop("block_end", self._trim(start))
        if self.stop_at_suffix and self._suffix_lines:
            if self._candidate is not None:
                cut, self._candidate = self._candidate, None
                if line.strip() == self._suffix_lines[1]:
                    return self._stop("suffix_overlap", self._trim(cut))
            stripped = line.strip()
            if stripped == self._suffix_lines[0] and len(stripped) < 4:
                # A short first suffix line ("}", ")") also closes inner blocks: need the next line too.
                if len(self._suffix_lines) > 1:
                    self._candidate = start
            elif any(_repeats(stripped, s) for s in self._suffix_lines):
                return self._stop("suffix_overlap", self._trim(start))
        return None

    def _line_cut(self, start: int, end: int) -> int:
        """The end of a mid-line completion's line: before the rest of the cursor line if the
        completion re-typed it (``x > 0:`` when the line already ends with ``:``)."""
        line = self._text[start:end].rstrip(" \t")
        if self._rest and line.endswith(self._rest):
            return start + len(line) - len(self._rest)
        return end

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
        else:
            limit -= self._retyped_tail(self._text[start:])
        while limit > 0 and self._text[limit - 1] in " \t\n":
            limit -= 1
        return limit

    def _retyped_tail(self, partial: str) -> int:
        """How much of the partial line's end may turn out to re-type the suffix (``line_end``'s
        rest of the line, ``bracket_overlap``'s text before the closer): held back."""
        held = 0
        for text in (self._rest if len(self._line_starts) == 1 else "", self._before_closer):
            for k in range(min(len(text), len(partial)), held, -1):
                if partial.endswith(text[:k]):
                    held = k
                    break
        return held

    def _undecided(self, partial: str) -> bool:
        """A rule may still cut the partial last line ``partial`` (its stripped text decides)."""
        text = partial.strip()
        if not text:
            return False  # blank so far: held as trailing blank space
        if self._indent_rule and self._block_indent is not None and _indent(partial) < self._block_indent:
            return True
        return self.stop_at_suffix and any(
            s.startswith(text) or (len(s) >= 12 and text.startswith(s)) for s in self._suffix_lines
        )

    def finish(self) -> int | None:
        """At the end of generation: drop a trailing partial line that leaves the block or only
        starts a suffix line, and a mid-line completion's re-typed rest of the line."""
        start = self._line_starts[-1]
        if self._mid_line and start == 0:
            cut = self._line_cut(0, len(self._text))
            return self._stop("line_end", cut) if cut < len(self._text) else None
        partial = self._text[start:]
        block = self._block_indent
        if self._indent_rule and block is not None and partial.strip() and _indent(partial) < block:
            return self._stop("block_end", self._trim(start))
        if not self.stop_at_suffix or not self._suffix_lines:
            return None
        tail = partial.strip()
        if len(tail) >= 4 and any(s.startswith(tail) for s in self._suffix_lines):
            return self._stop("suffix_overlap", self._trim(start))
        return None

    def _trim(self, cut: int) -> int:
        """Drop blank lines before a cut at the suffix; keep one newline unless the suffix starts with one."""
        kept = self._text[:cut]
        body = kept.rstrip(" \t\n")
        if len(body) == len(kept):
            return cut
        ends_line = "\n" in kept[len(body) :] and not self.suffix.startswith("\n")
        return len(body) + (1 if ends_line else 0)
