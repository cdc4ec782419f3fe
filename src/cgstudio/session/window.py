"""Where an editor prompt's prefix starts: a window of the code before the cursor, kept in place.

Editor paths send the code before the cursor from a line start about ``fim_prefix_tokens`` tokens
back (384 by default: what llama-server's /infill keeps at batch 512, three quarters of its batch),
so a cold request, the first one in a file or after a jump, evaluates a bounded prompt, however
long the file. The window's start is remembered, by the text before it, and kept while the text
before the cursor extends that text and the window holds at most ``GROWTH`` times the limit: typing
only appends to the window, so the cached prompt stays valid (a start that moved with every
keystroke, as a token window does, would make every keystroke evaluate the whole prompt again).
Past that, the window starts again about the limit back, once.

A text that fits the limit is sent whole. Each client (``GenerationRequest.client``: the server's
client key; the eval gives every task its own) keeps its most recent ``STARTS`` starts, so one
client's files never move another's window. A start is known by its offset and a hash of the text
just before it: matching one in an unrelated text by chance would only move where a prefix starts,
never what it holds.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable

GROWTH = 2  # a remembered start is kept until its window passes this many times the limit
STARTS = 32  # per client
CLIENTS = 64
_KEY_CHARS = 256  # the text before a start that identifies it

Count = Callable[[str], int]  # the tokens of a text


def _key(text: str, start: int) -> tuple[int, int]:
    return start, hash(text[max(0, start - _KEY_CHARS) : start])


class PrefixWindows:
    """Where recent editor prompts' prefix windows start, per client."""

    def __init__(self) -> None:
        self._clients: OrderedDict[str, deque[tuple[int, int]]] = OrderedDict()
        self._lock = threading.Lock()

    def cut(self, text: str, limit: int, count: Count, client: str = "", beside: str = "") -> str:
        """``text`` from its window's start: all of it when it has at most ``limit`` tokens (or
        ``limit`` is 0); else from the furthest-on start ``client`` remembers that still fits ``GROWTH``
        times ``limit``; else from a new start, the earliest line start with at most ``limit``
        tokens after it, less those of ``beside`` (down to a quarter of the limit), then
        remembered. ``beside`` is other text of the prompt that shares the limit: the editor
        layout's lines after the middle token. Only a new start counts it (so a keystroke does not
        tokenize it): a text within the limit stays whole, and a remembered start stays valid,
        however ``beside`` grows while the user types, so typing never moves the window."""
        if limit <= 0 or len(text) <= limit:
            return text
        with self._lock:
            starts = self._clients.pop(client, None) or deque(maxlen=STARTS)
            self._clients[client] = starts  # the most recent client last
            while len(self._clients) > CLIENTS:
                self._clients.popitem(last=False)
            for start, h in sorted(starts, reverse=True):
                if 0 < start < len(text) and _key(text, start) == (start, h):
                    window = text[start:]
                    if count(window) <= GROWTH * limit:
                        return window
            if count(text) <= limit:
                return text
            first = max(limit - count(beside), limit // 4, 1) if beside else limit
            start = _start(text, first, count)
            if start:
                starts.append(_key(text, start))
            return text[start:]


def _start(text: str, limit: int, count: Count) -> int:
    """The earliest line start after which ``text`` has at most ``limit`` tokens, counted line by
    line from the end; the last line's start when that line alone is longer."""
    start = len(text)
    used = 0
    while start > 0:
        line_start = text.rfind("\n", 0, start - 1) + 1  # the line that ends at ``start``
        used += count(text[line_start:start])
        if used > limit:
            return start if start < len(text) else line_start
        start = line_start
    return 0
