"""A streaming degeneration guard for code-model output ("loops").

Small code models decoding greedily fall into loops: the same line forever, a block of lines
forever, a *ladder* whose lines only differ in their numbers (gemma's ``elif n == 5: return 4``
/ ``elif n == 6: return 5`` / ...), one long line that repeats a phrase, or comment lines full
of hex ids. :class:`RepetitionGuard` watches the decoded text as it streams and says when to
stop and how much of the output is worth keeping.

Design (why it looks like this):

* **Cheap per token.** ``feed`` does amortised O(len(delta)) work and keeps bounded state. Line
  detectors keep, per candidate block length ``p`` (1..``max_block_lines``), the number of
  consecutive lines equal to the line ``p`` lines earlier: O(``max_block_lines``) per completed
  line, never a rescan. The character detector keeps the last position of each
  ``ngram_chars``-long substring over a window of ``ngram_window`` characters (pruned once per
  window) and extends one candidate period character by character.
* **Shapes, not only exact repeats.** A line's *shape* (``shapes.line_shape``) turns every number,
  ``0x..`` literal, uuid and hex id into ``#`` and runs of inner blanks into one space
  (indentation is kept), so a counting ladder repeats exactly at the shape level.
* **No false stops on legitimate repetitive code.** Real code has tables of constants, lists of
  test asserts and long elif chains, but they *end*; a degenerate ladder does not. So thresholds
  are counts with a margin over what legitimate code does:

  - one line shape repeated: ``shape_run_lines`` = 40 lines (HumanEval: at most 4 in prompts +
    solutions, 10 in tests; a 30-row table ``X_k = 0x..`` passes);
  - a multi-line block shape repeated (the gemma ladder is a 2-line block): ``block_repeats``
    = 12 copies (HumanEval: at most 5, the doctest examples of HumanEval/39). The ladder is
    stopped about 430 characters after it starts, well inside the 300-token (~1000 char) budget;
  - identical lines / blocks: ``min_lines`` = 8 lines / ``exact_block_repeats`` = 5 copies
    (HumanEval: 2 identical code lines; ordinary library code reaches 5);
  - *data rows* (no letter outside numbers: matrix rows, CRC tables) get larger thresholds,
    because literal tables legitimately repeat a row or a shape (``data_repeat_lines`` = 16,
    ``data_run_lines`` = 80; HumanEval/87's tests repeat ``[1,2,3,4,5,6],`` 5 times);
  - inside a line, an exactly periodic run of ``ngram_min_chars`` = 200 characters with at
    least 3 copies (HumanEval: 54 characters at most, a run of blanks).

  HumanEval (164 prompt + canonical solution, and 164 ``test`` fields) gives 0 stops; see
  ``scripts/repetition_recall.py``, which measures these figures.
* **Chunking does not matter.** Text is processed character by character (lines when they end)
  and the first detector that fires wins, so feeding one character at a time or the whole text
  at once gives the same verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

from cgstudio.generation.shapes import has_word, is_low_information, line_shape

__all__ = ["RepetitionConfig", "RepetitionGuard", "RepetitionVerdict", "line_shape"]


@dataclass(frozen=True)
class RepetitionConfig:
    """Thresholds of :class:`RepetitionGuard`. Units are given per field; all are positive.

    Line-based thresholds count *non-blank* lines: blank (whitespace-only) lines are skipped, so
    they neither count nor break a run.
    """

    #: Master switch: with ``enabled=False`` the guard never fires and keeps no state.
    enabled: bool = True
    #: Lines. Floor on the size of any repeated line region before a line-based stop is
    #: considered; also the number of copies needed when one *identical* code line repeats.
    min_lines: int = 8
    #: Copies. An exactly identical block of 2..``max_block_lines`` lines repeated this many
    #: times in a row stops generation (region also >= ``min_lines`` lines).
    exact_block_repeats: int = 5
    #: Lines. Consecutive code lines sharing one *shape* (numbers/hex ids normalised) needed to
    #: stop. Legitimate tables and assert lists end; HumanEval's longest run is 10 lines.
    shape_run_lines: int = 40
    #: Lines. For *data rows* (no letter or ``_`` outside numbers, ids and one-line string
    #: literals: rows of a literal matrix, of a CRC table, ``".notdef",`` entries of an encoding
    #: table), consecutive identical rows needed to stop; an empty 9x9 sudoku board is legit.
    data_repeat_lines: int = 16
    #: Lines. For data rows, consecutive rows of one shape needed to stop: a 256-entry CRC32
    #: table written 4 values per row is 64 rows of one shape and legitimate.
    data_run_lines: int = 80
    #: Copies. A block of 2..``max_block_lines`` lines whose *shape* repeats this many times in a
    #: row stops generation (the gemma ladder: 2-line block). HumanEval's maximum is 5 copies.
    #: A block of data rows only needs ``data_run_lines`` lines as well.
    block_repeats: int = 12
    #: Lines. Longest block (period) the line detectors look for; costs O(this) per line.
    max_block_lines: int = 16
    #: Lines. Consecutive comment lines carrying only numbers / hex ids (``-- 0x7f3a9b2c ...``,
    #: ``-- id: 3f2a9c1e-...``) needed to stop as low-information garbage.
    low_info_lines: int = 8
    #: Characters. Length of the substrings hashed to find candidate periods in the character
    #: stream (single-line loops such as ``the the the`` or ``abcabc...``).
    ngram_chars: int = 8
    #: Characters. An exactly periodic stretch must be at least this long to stop generation.
    ngram_min_chars: int = 200
    #: Copies. ...and contain at least this many copies of its period.
    ngram_min_repeats: int = 3
    #: Characters. Look-back window of the character detector: the longest period it can see and
    #: the bound on its memory (at most about 2x this many dict entries and 3x buffered chars).
    ngram_window: int = 2048
    #: Characters. Only the first this-many characters of a line are used for its shape/identity
    #: (bounds memory on giant lines; those are the character detector's job).
    max_line_chars: int = 1000

    def __post_init__(self) -> None:
        for name in (
            "min_lines",
            "exact_block_repeats",
            "shape_run_lines",
            "block_repeats",
            "max_block_lines",
            "low_info_lines",
            "data_repeat_lines",
            "data_run_lines",
            "ngram_chars",
            "ngram_min_chars",
            "ngram_min_repeats",
            "ngram_window",
            "max_line_chars",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"RepetitionConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.ngram_min_repeats < 2:
            raise ValueError("RepetitionConfig.ngram_min_repeats must be >= 2 (one copy is no repeat)")


@dataclass(frozen=True)
class RepetitionVerdict:
    """Why generation should stop.

    ``kind`` is one of ``"repeated_lines"`` (one line or line shape repeating),
    ``"repeated_block"`` (a multi-line block or block shape repeating), ``"ngram_loop"`` (a
    character sequence repeating without newlines) and ``"low_information"`` (comment lines of
    hex ids / numbers). ``detail`` is a human-readable explanation. ``keep_chars`` is how many
    characters of the text fed so far are worth keeping: for repeats, everything up to the start
    of the second copy (the first copy stays); for low-information lines, everything before the
    first such line.
    """

    kind: str
    detail: str
    keep_chars: int


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class _Line:
    shape: int  # hash of the shape
    exact: int  # hash of the line itself (trailing blanks dropped)
    cut: int  # absolute offset just after the previous non-blank line: where a copy starting here is cut
    indent: int  # leading blank characters
    has_word: bool  # a letter or "_" outside numbers, ids and strings: code, not a data row
    shape_text: str  # clipped shape, for the verdict's detail
    exact_text: str  # clipped line, for the verdict's detail


class _Runs:
    """Per block length ``p``: how many consecutive lines equal the line ``p`` lines earlier.

    A run of ``r`` lines for period ``p`` means ``r + p`` lines made of ``(r + p) // p`` copies of a
    ``p``-line block. ``cut[p]`` is where the second copy starts; among the first ``p`` lines of
    the run (any of them may be taken as the start of a copy) the least indented one is chosen, so
    that cutting there leaves whole blocks (``elif ...:`` + its body), not half of one.
    """

    def __init__(self, max_period: int) -> None:
        self.run = [0] * (max_period + 1)
        self.cut = [0] * (max_period + 1)
        self.indent = [0] * (max_period + 1)
        self.phase = [0] * (max_period + 1)  # line index modulo p of the line at cut[p]

    def update(self, p: int, same: bool, line: _Line, index: int) -> None:
        if not same:
            self.run[p] = 0
            return
        run = self.run[p] = self.run[p] + 1
        if run == 1 or (run <= p and line.indent < self.indent[p]):
            self.cut[p], self.indent[p], self.phase[p] = line.cut, line.indent, index % p

    def primitive(self, p: int) -> bool:
        """False when the period-``p`` run is just a repeat of a shorter period dividing ``p``.

        (A run of one line shape is also a run of 2-line blocks; it must be judged as lines.)
        """
        run = self.run[p]
        return all(self.run[d] < run for d in range(1, p) if p % d == 0)


class RepetitionGuard:
    """Watches streamed model output and reports degeneration (see the module docstring).

    Feed every decoded text delta to :meth:`feed`, in order. Deltas may have any size and may
    split lines anywhere; the verdict does not depend on the chunking. One guard watches one
    generation; make a new guard for the next one. Not thread-safe (one stream, one guard).
    """

    def __init__(self, config: RepetitionConfig | None = None) -> None:
        self.config = config if config is not None else RepetitionConfig()
        self._verdict: RepetitionVerdict | None = None
        self._pos = 0  # characters fed so far (absolute offset of the next character)
        # Line state. _line_parts holds at most max_line_chars characters of the current line.
        self._line_parts: list[str] = []
        self._line_len = 0
        self._cut = 0  # offset just after the last non-blank line's newline
        self._history: list[_Line] = []  # last max_block_lines non-blank lines, oldest first
        self._n_lines = 0  # non-blank lines completed so far
        self._shape = _Runs(self.config.max_block_lines)  # runs of equal line shapes
        self._exact = _Runs(self.config.max_block_lines)  # runs of identical lines
        self._low_run = 0
        self._low_cut = 0
        # Character state: the last ngram_window+ characters, the last position of each n-gram in
        # the window, and the current candidate period with how many characters it has matched.
        self._chars: list[str] = []
        self._chars_start = 0  # absolute offset of _chars[0]
        self._ngram_last: dict[str, int] = {}
        self._next_prune = self.config.ngram_window
        self._period = 0
        self._period_run = 0
        self._period_deferred = False  # the current run was already judged a line-detector case

    @property
    def verdict(self) -> RepetitionVerdict | None:
        """The verdict once degeneration was detected, else ``None``."""
        return self._verdict

    @property
    def chars_seen(self) -> int:
        """Characters fed so far (up to the detection point once a verdict is reached)."""
        return self._pos

    def state_size(self) -> int:
        """Number of items held in incremental state (buffered characters, n-gram entries, lines).

        Bounded by ``5 * ngram_window + max_line_chars + max_block_lines`` whatever the length of
        the output (3 windows of characters, 2 of n-gram entries): useful to check that memory
        does not grow with the stream.
        """
        return len(self._chars) + len(self._ngram_last) + len(self._line_parts) + len(self._history)

    def feed(self, text: str) -> RepetitionVerdict | None:
        """Consume the next decoded delta ``text``; return a verdict once degeneration is seen.

        Once a verdict was returned, every later call returns the same verdict (and ignores the
        text). Returns ``None`` while the output looks healthy, and always with ``enabled=False``.
        Work is amortised O(len(text)).
        """
        if self._verdict is not None or not self.config.enabled or not text:
            return self._verdict
        window = self.config.ngram_window
        # Slices of at most one window keep the character buffer bounded even for huge deltas.
        for start in range(0, len(text), window):
            piece = text[start : start + window]
            begin = 0
            while begin < len(piece):
                nl = piece.find("\n", begin)
                end = len(piece) if nl < 0 else nl + 1
                segment = piece[begin:end]
                verdict = self._scan_chars(segment)
                if verdict is None:
                    self._add_to_line(segment[:-1] if nl >= 0 else segment)
                    if nl >= 0:
                        verdict = self._end_line()
                if verdict is not None:
                    self._verdict = verdict
                    return verdict
                begin = end
        return None

    # --- character stream: exact loops inside (or across) lines ---------------------------------

    def _scan_chars(self, segment: str) -> RepetitionVerdict | None:
        """Run the period detector over ``segment``; advances ``self._pos``."""
        cfg = self.config
        n, window = cfg.ngram_chars, cfg.ngram_window
        chars = self._chars
        if len(chars) > 2 * window:  # amortised trim: keep the last `window` characters
            drop = len(chars) - window
            del chars[:drop]
            self._chars_start += drop
        tail = "".join(chars[-(n - 1) :]) if n > 1 else ""
        chars.extend(segment)
        ctx = tail + segment  # n-gram keys are slices of this string
        first_key_at = n - 1  # index in ctx of the first position with a complete n-gram
        base = self._chars_start
        last = self._ngram_last
        period, run, deferred = self._period, self._period_run, self._period_deferred
        min_chars, repeats = cfg.ngram_min_chars, cfg.ngram_min_repeats
        i = self._pos
        for j, c in enumerate(segment, start=len(tail)):
            # Does the loop with the current candidate period go on?
            if period and chars[i - period - base] == c:
                run += 1
            else:
                period = run = 0
                deferred = False
            if j >= first_key_at:
                key = ctx[j - n + 1 : j + 1]
                if not period:
                    prev = last.get(key)
                    if prev is not None and i - prev <= window:
                        # The n characters ending here equal those ending `i - prev` earlier.
                        period, run = i - prev, n
                last[key] = i
            if period and not deferred and run >= min_chars and run >= (repeats - 1) * period:
                # A period spanning a few lines is the line detectors' business (their thresholds
                # know that an identical row of a literal matrix is fine); this detector only
                # judges loops inside a line and blocks too long for the line detectors. Checked
                # once per run, so the O(period) look is amortised.
                unit_newlines = chars[i - period + 1 - base : i + 1 - base].count("\n")
                if unit_newlines == 0 or unit_newlines > cfg.max_block_lines:
                    self._pos = i + 1
                    return self._ngram_verdict(i, period, run)
                deferred = True
            i += 1
            if i >= self._next_prune:
                # Forget n-grams older than the window: keeps the dict O(window), amortised O(1).
                self._ngram_last = last = {k: v for k, v in last.items() if v > i - window}
                self._next_prune = i + window
        self._pos = i
        self._period, self._period_run, self._period_deferred = period, run, deferred
        return None

    def _ngram_verdict(self, i: int, period: int, run: int) -> RepetitionVerdict:
        base = self._chars_start
        unit = "".join(self._chars[i - period + 1 - base : i + 1 - base])
        copies = (run + period) // period
        # The run's first character is the start of the second copy: keep the first one.
        keep = i + 1 - run
        kind = "ngram_loop"
        if "\n" in unit:
            kind = "repeated_block"
            # Any start within one period is a valid copy boundary; cut just after a newline so
            # whole lines are kept. `unit` is text[i - period + 1 : i + 1], and text is periodic.
            first = i - period + 1
            keep = min(keep + (q + 1 - keep) % period for q, ch in enumerate(unit, first) if ch == "\n")
            unit = unit[(keep - first) % period :] + unit[: (keep - first) % period]
        detail = f"the {period}-char sequence {_clip(unit)!r} repeated {copies} times in a row"
        return RepetitionVerdict(kind=kind, detail=detail, keep_chars=keep)

    # --- lines: exact and shape repeats of lines and blocks, low-information comments ------------

    def _add_to_line(self, text: str) -> None:
        room = self.config.max_line_chars - self._line_len
        if room > 0 and text:
            self._line_parts.append(text[:room])
            self._line_len += min(room, len(text))

    def _end_line(self) -> RepetitionVerdict | None:
        """Called after a line's newline was scanned (``self._pos`` is just past it)."""
        line = "".join(self._line_parts)
        self._line_parts.clear()
        self._line_len = 0
        if not line.strip():
            return None  # blank lines neither count nor break runs
        cfg = self.config
        shape = line_shape(line)
        exact = line.rstrip()
        cur = _Line(
            shape=hash(shape),
            exact=hash(exact),
            cut=self._cut,
            indent=len(line) - len(line.lstrip()),
            # Words are looked for outside numbers/ids ("0x1F") and string literals ('".notdef",').
            has_word=has_word(shape),
            shape_text=_clip(shape),
            exact_text=_clip(exact),
        )
        self._cut = self._pos
        index = self._n_lines
        self._n_lines += 1
        history = self._history
        for p in range(1, cfg.max_block_lines + 1):
            same_shape = p <= len(history) and history[-p].shape == cur.shape
            self._shape.update(p, same_shape, cur, index)
            self._exact.update(p, same_shape and history[-p].exact == cur.exact, cur, index)
        history.append(cur)
        if len(history) > cfg.max_block_lines:
            del history[0]

        if is_low_information(line):
            self._low_run += 1
            if self._low_run == 1:
                self._low_cut = cur.cut
        else:
            self._low_run = 0
        return self._line_verdict()

    def _block(self, runs: _Runs, p: int, exact: bool) -> str:
        """The last ``p`` lines as text, rotated to start where the run's cut is aligned."""
        last = self._history[-p:]
        k = (runs.phase[p] - self._n_lines) % p
        last = last[k:] + last[:k]
        return "\n".join(x.exact_text if exact else x.shape_text for x in last)

    def _line_verdict(self) -> RepetitionVerdict | None:
        cfg = self.config
        history = self._history
        # Exact repeats: the strongest evidence, so the lowest thresholds. Data rows (no letter:
        # an empty sudoku board's "[0, 0, 0, ...],") legitimately repeat a few times, so they need
        # more copies, and a block made of data rows only is left to the shape thresholds below.
        exact = self._exact
        for p in range(1, cfg.max_block_lines + 1):
            run = exact.run[p]
            if run == 0 or not exact.primitive(p):
                continue
            lines = run + p
            copies = lines // p
            if p == 1:
                needed = cfg.min_lines if history[-1].has_word else cfg.data_repeat_lines
                if lines >= max(needed, cfg.min_lines):
                    detail = f"the line {history[-1].exact_text!r} repeated {copies} times"
                    return RepetitionVerdict("repeated_lines", detail, exact.cut[1])
            elif (
                copies >= cfg.exact_block_repeats
                and lines >= cfg.min_lines
                and any(x.has_word for x in history[-p:])
            ):
                block = _clip(self._block(exact, p, exact=True), 160)
                detail = f"the {p}-line block {block!r} repeated {copies} times"
                return RepetitionVerdict("repeated_block", detail, exact.cut[p])
        # Shape repeats (numbers and ids normalised): ladders and counting loops.
        shapes = self._shape
        for p in range(1, cfg.max_block_lines + 1):
            run = shapes.run[p]
            if run == 0 or not shapes.primitive(p):
                continue
            lines = run + p
            copies = lines // p
            needed = cfg.shape_run_lines if history[-1].has_word else cfg.data_run_lines
            if p == 1 and lines >= max(needed, cfg.min_lines):
                detail = f"the line shape {history[-1].shape_text!r} repeated {copies} times"
                return RepetitionVerdict("repeated_lines", detail, shapes.cut[1])
            # A block made only of data rows (a numeric table written two rows per entry) is
            # judged like data rows: by its length in lines.
            if (
                p > 1
                and copies >= cfg.block_repeats
                and lines >= cfg.min_lines
                and (lines >= cfg.data_run_lines or any(x.has_word for x in history[-p:]))
            ):
                block = _clip(self._block(shapes, p, exact=False), 160)
                detail = f"the {p}-line block shape {block!r} repeated {copies} times"
                return RepetitionVerdict("repeated_block", detail, shapes.cut[p])
        if self._low_run >= max(cfg.low_info_lines, cfg.min_lines):
            detail = (
                f"{self._low_run} consecutive comment lines carrying only numbers/hex ids, "
                f"e.g. {history[-1].exact_text!r}"
            )
            return RepetitionVerdict("low_information", detail, self._low_cut)
        return None
