"""Where an editor prompt's middle starts: the anchor, kept while the user types forward.

The editor layout (``fim_cursor_line_in_middle``) sends the text before the cursor in two parts:
the *head*, up to a line start, before the suffix, and the rest after the middle token. Typing
then only appends to the prompt, and the cached head and suffix stay valid. Which line start is
the head's end decides how long that lasts:

* with no anchor that fits, the cursor line's start (``cursor_line``): llama.vim's layout. A
  cursor at a line start or after indentation only (a line Enter just opened, or one the cursor
  arrived on) takes the lines above too, up to ``LINES_ABOVE`` (``line_above``): moved after the
  middle token alone, indentation is not how the model tokenizes an indented line, but after lines
  of code it is (token healing covers it); the first character typed then only appends, and the
  model sees the code nearest the cursor right before it writes (pass@1 rose with each line moved
  there, on HumanEval's multi-line infilling tasks, whose cursor is at a line start);
* with one, the anchor an earlier request of this editing run set: while the new text before the
  cursor extends that head, and the text after the cursor is the same, the head stays, so Enter,
  new lines and accepted multi-line suggestions append to the middle too.

An anchor stops fitting when the text before it changed (an edit above, a jump back, a backspace
past it), when the text after the cursor differs (a jump, another file), or when the middle would
pass ``MAX_MIDDLE_CHARS`` or ``MAX_MIDDLE_LINES``: then the cursor line's start is the new anchor,
and that request evaluates the suffix again, once. Anchors are matched by content, so several
editors and files share the memory without mixing; the most recent ``ANCHORS`` are kept.
"""

from __future__ import annotations

import threading
from collections import deque

MAX_CURSOR_LINE = 512  # characters; a longer cursor line (minified code) stays in the prefix
MAX_MIDDLE_CHARS = 2048  # the text an anchor may carry after the middle token
MAX_MIDDLE_LINES = 32
# A cursor at a line start: the lines above it that go after the middle token too. Measured with
# Qwen2.5-Coder-0.5B on the first 150 seeded multi-line infilling tasks (scripts/eval_anchor_depth.py):
# pass@1 47/150 with none (PSM), 63 with 1 line, 65 with 4, 70 with 12.
LINES_ABOVE = 12
FIRST_MIDDLE_CHARS = 1024
ANCHORS = 32


def cursor_line(prefix: str, tail: str = "") -> tuple[str, str] | None:
    """``(prefix up to the cursor line, the cursor line's text before the cursor)``; None when the
    cursor is at a line start or after its indentation only, on the first line, or on a line over
    ``MAX_CURSOR_LINE``. (Indentation alone stays in the prefix, as PSM sends it: moved after the
    middle token it is not how the model tokenizes an indented line.) ``tail``: text token healing
    took off the end of ``prefix``; it belongs to the cursor line."""
    head, sep, line = prefix.rpartition("\n")
    if not sep or not (line + tail).strip() or len(line + tail) > MAX_CURSOR_LINE:
        return None
    return head + sep, line


def line_above(prefix: str, tail: str = "") -> str | None:
    """Where the middle starts for a cursor at a line start or after indentation only (``tail``
    included): the start of the line ``LINES_ABOVE`` lines above the cursor's, or of the highest
    line before that whose text would take the middle past ``FIRST_MIDDLE_CHARS`` or that is over
    ``MAX_CURSOR_LINE`` (the first line of the text always stays before it); None when the cursor
    line has text, or no line of code lies in between."""
    rest, sep, line = prefix.rpartition("\n")
    if not sep or (line + tail).strip():
        return None
    head, code = None, False
    used = len(line)
    for _ in range(LINES_ABOVE):
        rest, sep, above = rest.rpartition("\n")
        used += len(above) + 1
        if not sep or len(above) > MAX_CURSOR_LINE or used > FIRST_MIDDLE_CHARS:
            break
        head, code = rest + sep, code or bool(above.strip())
    return head if code else None


class Anchors:
    """The heads of recent editor prompts, with the text after the cursor each was sent with."""

    def __init__(self, size: int = ANCHORS) -> None:
        self._items: deque[tuple[str, str]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def split(self, prefix: str, suffix: str, tail: str = "") -> tuple[str, str] | None:
        """``(head, middle)`` for a prompt whose text before the cursor is ``prefix`` (then ``tail``,
        which token healing took off and the reply must start with): the longest
        fitting anchor's head, else the cursor line's start (then remembered as an anchor); None
        where no split applies (then a cursor at a line start is remembered as one)."""
        with self._lock:
            fits = self._fitting(prefix, suffix)
            if fits:
                head = max(fits, key=len)
                middle = prefix[len(head) :]
                if "\n" in middle or (middle + tail).strip():
                    return head, middle
                return None  # the anchor is this line's start and the line is indentation only
            above = line_above(prefix, tail)
            if above is not None:  # indentation only under a line of code: that line's start
                self._items.append((above, suffix))
                return above, prefix[len(above) :]
            split = cursor_line(prefix, tail)
            head, sep, _ = prefix.rpartition("\n")
            if sep:  # the cursor line's start: the next keystroke on this line appends after it
                self._items.append((head + sep, suffix))
            return split

    def spans_lines(self, prefix: str, suffix: str) -> bool:
        """Whether the split ``split`` will make has a line break after its head: the text after
        the middle token then ends on a line of its own (whose indentation healing must cover).
        That is a remembered anchor that fits with a line break after it, or, with none fitting,
        an indentation-only cursor line under a line of code (``line_above``). Records nothing."""
        with self._lock:
            fits = self._fitting(prefix, suffix)
            if fits:
                return "\n" in prefix[len(max(fits, key=len)) :]
            return line_above(prefix) is not None

    def _fitting(self, prefix: str, suffix: str) -> list[str]:
        """The remembered heads that fit ``prefix`` with ``suffix`` (the caller holds the lock)."""
        return [h for h, s in self._items if s == suffix and _fits(prefix, h)]


def _fits(prefix: str, head: str) -> bool:
    if not prefix.startswith(head):
        return False
    middle = len(prefix) - len(head)
    return middle <= MAX_MIDDLE_CHARS and prefix.count("\n", len(head)) <= MAX_MIDDLE_LINES
