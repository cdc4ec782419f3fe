"""Deterministic typing traces on real standard-library files: what an editor sends as a user works.

A trace is one FIM request per step, each the whole document split at the cursor (``prefix``,
``suffix``). The first step of every trace is ``open``: the cursor arrives, and a runner serves it
to fill its cache without timing it. Then each step is one editor event:

- ``type``: one character typed;
- ``backspace``: one character deleted before the cursor;
- ``enter``: a new line and the indentation the editor puts on it;
- ``accept``: a suggestion accepted. It is pre-scripted: the accepted ghost text is the file's own
  text (the rest of the line, or of two lines), as if the model had suggested it, so that every
  runner sends the same prompts whatever its model answered;
- ``jump``: the cursor moves 40 lines (the text stays as it is);
- ``switch``: the user goes to another file (``Step.file``), or back, where the cursor was left;
- ``paste``: a block of whole lines inserted at once;
- ``ghost``: the runner's own suggestion accepted: the first line of its answer to the step before
  goes in at the cursor. The step itself inserts nothing; a runner applies what it accepted with
  ``with_accepted``, so later steps' documents hold it. Only the ``ghost`` trace has such steps:
  every runner there sends prompts that depend on its own answers (deterministic under greedy
  decoding), as an editor does.

The ``end`` trace types a line at the end of a file (new code at the bottom, or in a new file):
the suffix is empty, so nothing after the cursor is evaluated again and exact reuse covers the
whole prompt before the typed text. In PSM order (prefix, suffix, middle: Qwen2.5-Coder's only
trained order) that is the one place where a keystroke can cost about one decode step; elsewhere
every keystroke evaluates the suffix again.

The documents are windows of real modules from the running Python's standard library (so every
machine has them): from the start of the module's longest top-level class, as many whole lines as
fit in 10,400 characters (about 2,000 tokens of Qwen2.5-Coder; 3,100 characters, about 600
tokens, in quick mode). A trace that types a line removes that line's code first, and types it
back: the text after the cursor is the rest of the file, as an editor sends it.
The same ``seed`` and Python version give the same traces.

Each trace is named after what it exercises; ``EXACT_REUSE`` names the traces whose every step only
edits at the cursor, where reusing the cached prompt up to the cursor applies; ``NO_SUFFIX`` the
ones with nothing after the cursor.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, replace

from cgstudio.bench.workloads import stdlib_source

KINDS = ("open", "type", "backspace", "enter", "accept", "jump", "switch", "paste", "ghost")
EXACT_REUSE = ("type", "backspace", "enter", "accept", "ghost")  # traces: edits at the cursor only
NO_SUFFIX = ("end",)  # traces: typing at the end of the file, nothing after the cursor
TRACE_NAMES = ("type", "backspace", "enter", "accept", "jump", "switch", "paste", "end", "ghost")
FILES = ("argparse", "shlex")  # the main file, and the one the switch trace goes to
JUMP_LINES = 40


@dataclass(frozen=True)
class Step:
    """One request: the document before and after the cursor, and the event that led to it."""

    prefix: str
    suffix: str
    kind: str  # one of KINDS
    file: str = ""  # the document's file name; "" means the trace's file


@dataclass(frozen=True)
class Trace:
    name: str  # one of TRACE_NAMES
    file: str  # the file the trace opens in
    steps: list[Step]


@dataclass(frozen=True)
class _Sizes:
    chars: int  # the window of each file, in characters (whole lines)
    typed: int  # characters of the type trace
    backspaces: int
    enter_lines: int  # new lines of the enter trace
    enter_typed: int  # characters typed on each new line before accepting its rest
    accept_typed: int  # characters typed before each accepted suggestion
    jumps: tuple[int, ...]  # cursor moves, in lines
    switches: int
    paste: tuple[int, int]  # lines of the two pasted blocks
    ghosts: int  # own suggestions accepted in the ghost trace, one a line


FULL = _Sizes(10_400, 10, 5, 3, 1, 2, (JUMP_LINES, JUMP_LINES, -2 * JUMP_LINES), 3, (8, 6), 3)
QUICK = _Sizes(3100, 4, 3, 2, 0, 1, (JUMP_LINES, -JUMP_LINES), 2, (4, 3), 2)


def typing_traces(seed: int = 0, quick: bool = False) -> list[Trace]:
    """The traces named in ``TRACE_NAMES``, in that order; ``seed`` picks the cursor lines."""
    sizes = QUICK if quick else FULL
    rng = random.Random(seed)
    main = _window(FILES[0], sizes.chars)
    other = _window(FILES[1], sizes.chars)
    return [
        _type(main, rng, sizes),
        _backspace(main, rng, sizes),
        _enter(main, rng, sizes),
        _accept(main, rng, sizes),
        _jump(main, rng, sizes),
        _switch(main, other, rng, sizes),
        _paste(main, rng, sizes),
        _end(main, rng, sizes),
        _ghost(main, rng, sizes),
    ]


def accepted_text(answer: str) -> str:
    """What a ``ghost`` step accepts of a runner's answer: its first line, as the ghost text of a
    line completion shows it."""
    return answer.split("\n", 1)[0]


def with_accepted(step: Step, accepted: list[tuple[int, str]]) -> Step:
    """``step`` with each ``(offset, text)`` a runner accepted inserted into its prefix, where the
    ``ghost`` step at that offset of the scripted prefix put it (offsets ascending)."""
    if not accepted:
        return step
    parts, at = [], 0
    for offset, text in accepted:
        parts += [step.prefix[at:offset], text]
        at = offset
    return replace(step, prefix="".join(parts) + step.prefix[at:])


# -- documents -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Window:
    file: str
    lines: list[str]  # each ends with "\n"
    code: list[int]  # indices of statement lines inside a function (candidate cursor lines)

    def offset(self, i: int) -> int:
        return sum(len(line) for line in self.lines[:i])


class _Doc:
    """An open file: its text and cursor, edited in place; ``step`` records a request."""

    def __init__(self, file: str, text: str, cursor: int) -> None:
        self.file, self.text, self.cursor = file, text, cursor

    def step(self, kind: str) -> Step:
        return Step(self.text[: self.cursor], self.text[self.cursor :], kind, self.file)

    def insert(self, s: str) -> None:
        self.text = self.text[: self.cursor] + s + self.text[self.cursor :]
        self.cursor += len(s)

    def backspace(self) -> None:
        self.text = self.text[: self.cursor - 1] + self.text[self.cursor :]
        self.cursor -= 1

    def line_end(self, i: int) -> int:
        """The offset of line ``i``'s end (before its newline), clamped to the document."""
        lines = self.text.splitlines(keepends=True)
        i = max(0, min(i, len(lines) - 1))
        return sum(len(line) for line in lines[:i]) + len(lines[i].rstrip("\n"))

    def line_of_cursor(self) -> int:
        return self.text.count("\n", 0, self.cursor)


def _window(module: str, chars: int) -> _Window:
    lines = stdlib_source(module).splitlines(keepends=True)
    tops = [i for i, line in enumerate(lines) if re.match(r"(class|def) ", line)] + [len(lines)]
    spans = [(b - a, a) for a, b in itertools.pairwise(tops) if lines[a].startswith("class ")]
    start = max(spans)[1] if spans else 0
    out: list[str] = []
    size = 0
    for line in lines[start:]:
        if size + len(line) > chars:
            break
        out.append(line)
        size += len(line)
    return _Window(f"{module}.py", out, _statement_lines(out))


def _statement_lines(lines: list[str]) -> list[int]:
    """Lines that begin a statement inside a function: not in a docstring or a bracket left open,
    indented by 8 or more, starting with a name."""
    out: list[int] = []
    in_string = False
    depth = 0
    for i, line in enumerate(lines):
        stripped = line.strip()
        quotes = line.count('"""') + line.count("'''")
        if not in_string and depth == 0 and line.startswith(" " * 8) and re.match(r"[A-Za-z_]", stripped):
            out.append(i)
        if quotes % 2:
            in_string = not in_string
        if not in_string:
            code = line.split("#", 1)[0]
            depth = max(0, depth + sum(code.count(c) for c in "([{") - sum(code.count(c) for c in ")]}"))
    return out


def _split(line: str) -> tuple[str, str]:
    """A line's indentation and its code (without the newline)."""
    body = line.rstrip("\n")
    code = body.lstrip()
    return body[: len(body) - len(code)], code


def _pick(rng: random.Random, candidates: list[int], what: str) -> int:
    if not candidates:
        raise ValueError(f"no line in the window fits the {what} trace")
    return rng.choice(candidates)


def _runs(w: _Window, length: int) -> list[int]:
    """Statement lines followed by ``length`` - 1 more non-blank lines."""
    n = len(w.lines)
    return [i for i in w.code if i + length <= n and all(w.lines[j].strip() for j in range(i, i + length))]


# -- traces ------------------------------------------------------------------------------------------
def _retype(w: _Window, i: int) -> tuple[_Doc, str]:
    """The document with line ``i``'s code taken out (its indentation kept), the cursor there."""
    indent, code = _split(w.lines[i])
    text = "".join(w.lines[:i]) + indent + "\n" + "".join(w.lines[i + 1 :])
    doc = _Doc(w.file, text, w.offset(i) + len(indent))
    return doc, code


def _type(w: _Window, rng: random.Random, s: _Sizes) -> Trace:
    i = _pick(rng, [i for i in w.code if len(_split(w.lines[i])[1]) >= s.typed], "type")
    doc, code = _retype(w, i)
    steps = [doc.step("open")]
    for ch in code[: s.typed]:
        doc.insert(ch)
        steps.append(doc.step("type"))
    return Trace("type", w.file, steps)


def _backspace(w: _Window, rng: random.Random, s: _Sizes) -> Trace:
    """Backspaces at the end of a line, then two of the deleted characters typed again."""
    i = _pick(rng, [i for i in w.code if len(_split(w.lines[i])[1]) > s.backspaces + 4], "backspace")
    doc = _Doc(w.file, "".join(w.lines), w.offset(i) + len(w.lines[i].rstrip("\n")))
    steps = [doc.step("open")]
    deleted = ""
    for _ in range(s.backspaces):
        deleted = doc.text[doc.cursor - 1] + deleted
        doc.backspace()
        steps.append(doc.step("backspace"))
    for ch in deleted[:2]:
        doc.insert(ch)
        steps.append(doc.step("type"))
    return Trace("backspace", w.file, steps)


def _enter(w: _Window, rng: random.Random, s: _Sizes) -> Trace:
    """New lines written after a line's end: Enter, a character typed, the line's rest accepted."""
    k = s.enter_lines
    i = _pick(rng, [i + 1 for i in _runs(w, k + 1)], "enter")
    lines = w.lines
    doc = _Doc(w.file, "".join(lines[:i] + lines[i + k :]), w.offset(i) - 1)
    steps = [doc.step("open")]
    for line in lines[i : i + k]:
        indent, code = _split(line)
        doc.insert("\n" + indent)
        steps.append(doc.step("enter"))
        for ch in code[: s.enter_typed]:
            doc.insert(ch)
            steps.append(doc.step("type"))
        doc.insert(code[s.enter_typed :])
        steps.append(doc.step("accept"))
    return Trace("enter", w.file, steps)


def _accept(w: _Window, rng: random.Random, s: _Sizes) -> Trace:
    """Two rounds: a character or two typed, then a two-line suggestion accepted; Enter between."""
    lines = w.lines
    i = _pick(rng, _runs(w, 4), "accept")
    indent, code = _split(lines[i])
    text = "".join(lines[:i]) + indent + "\n" + "".join(lines[i + 4 :])
    doc = _Doc(w.file, text, w.offset(i) + len(indent))
    steps = [doc.step("open")]
    for r in (0, 2):
        if r:
            indent, code = _split(lines[i + r])
            doc.insert("\n" + indent)
            steps.append(doc.step("enter"))
        for ch in code[: s.accept_typed]:
            doc.insert(ch)
            steps.append(doc.step("type"))
        doc.insert(code[s.accept_typed :] + "\n" + lines[i + r + 1].rstrip("\n"))
        steps.append(doc.step("accept"))
    return Trace("accept", w.file, steps)


def _jump(w: _Window, rng: random.Random, s: _Sizes) -> Trace:
    """The cursor jumps by ``s.jumps`` lines, and Enter opens a new line where it lands."""
    down = max(0, max(sum(s.jumps[:k]) for k in range(1, len(s.jumps) + 1)))
    fits = [i for i in w.code if i + down + 5 < len(w.lines)] or w.code[:1]  # not onto the last lines
    i = _pick(rng, fits, "jump")
    doc = _Doc(w.file, "".join(w.lines), w.offset(i) + len(w.lines[i].rstrip("\n")))
    steps = [doc.step("open")]
    for d in s.jumps:
        doc.cursor = doc.line_end(doc.line_of_cursor() + d)
        steps.append(doc.step("jump"))
        line = doc.text[doc.text.rfind("\n", 0, doc.cursor) + 1 : doc.cursor]
        doc.insert("\n" + line[: len(line) - len(line.lstrip())])
        steps.append(doc.step("enter"))
    return Trace("jump", w.file, steps)


def _switch(main: _Window, other: _Window, rng: random.Random, s: _Sizes) -> Trace:
    """A character typed in each file between switches; each file keeps its cursor."""
    docs = []
    for w in (main, other):
        i = _pick(rng, [i for i in w.code if len(_split(w.lines[i])[1]) >= s.switches + 1], "switch")
        docs.append(_retype(w, i))
    (doc, code), typed = docs[0], [0, 0]
    steps = [doc.step("open")]
    for k in range(s.switches + 1):
        if k:
            doc, code = docs[k % 2]
            steps.append(doc.step("switch"))
        doc.insert(code[typed[k % 2]])
        typed[k % 2] += 1
        steps.append(doc.step("type"))
    return Trace("switch", main.file, steps)


def _paste(w: _Window, rng: random.Random, s: _Sizes) -> Trace:
    """A method's first lines pasted at a line start, Enter, then the next lines pasted."""
    a, b = s.paste
    starts = [
        i for i, line in enumerate(w.lines) if line.startswith("    def ") and i + a + b <= len(w.lines)
    ]
    i = _pick(rng, starts, "paste")
    lines = w.lines
    doc = _Doc(w.file, "".join(lines[:i] + lines[i + a + b :]), w.offset(i))
    steps = [doc.step("open")]
    doc.insert("".join(lines[i : i + a]))
    steps.append(doc.step("paste"))
    doc.insert("\n")
    steps.append(doc.step("enter"))
    doc.insert("".join(lines[i + a : i + a + b]))
    steps.append(doc.step("paste"))
    return Trace("paste", w.file, steps)


def _end(w: _Window, rng: random.Random, s: _Sizes) -> Trace:
    """A line typed at the end of the file: the document stops at the cursor (no suffix)."""
    near_end = [i for i in w.code if w.offset(i) >= 0.85 * w.offset(len(w.lines))]
    i = _pick(rng, [i for i in near_end if len(_split(w.lines[i])[1]) >= s.typed], "end")
    indent, code = _split(w.lines[i])
    doc = _Doc(w.file, "".join(w.lines[:i]) + indent, w.offset(i) + len(indent))
    steps = [doc.step("open")]
    for ch in code[: s.typed]:
        doc.insert(ch)
        steps.append(doc.step("type"))
    return Trace("end", w.file, steps)


def _ghost(w: _Window, rng: random.Random, s: _Sizes) -> Trace:
    """Lines written with the model: a character typed, the runner's own suggestion accepted
    (``ghost``), then Enter and the next line's indentation; ``s.ghosts`` lines."""
    lines = w.lines
    i = _pick(rng, _runs(w, s.ghosts), "ghost")
    indent, code = _split(lines[i])
    text = "".join(lines[:i]) + indent + "\n" + "".join(lines[i + s.ghosts :])
    doc = _Doc(w.file, text, w.offset(i) + len(indent))
    steps = [doc.step("open")]
    for r in range(s.ghosts):
        if r:
            indent, code = _split(lines[i + r])
            doc.insert("\n" + indent)
            steps.append(doc.step("enter"))
        doc.insert(code[0])
        steps.append(doc.step("type"))
        steps.append(doc.step("ghost"))
    return Trace("ghost", w.file, steps)
