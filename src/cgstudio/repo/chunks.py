"""Chunks of a large context file, and how much each one says about the text at the cursor.

A file the imports or the test source offers is cut into chunks when it is larger than
``LARGE_CHARS``, so that the token budget can keep the part that matters instead of dropping the
whole file. The chunks cover the file exactly, in order: with all of them kept the prompt reads
the same bytes as the whole file.

Python (when it parses): the module header (docstring, imports, constants) up to the first
top-level ``def`` or ``class``, then one chunk per top-level definition with its decorators and
the comment lines right above it; top-level statements between definitions stay with the
definition before them. A class longer than ``MAX_LINES`` is cut again at its methods: the class
line with its docstring and attributes, then one chunk per method. Other languages, and Python
that does not parse: blocks separated by blank lines, joined while they fit ``MAX_LINES``.

``rank_chunks`` orders a file's chunks by value for the cursor's identifiers: the chunks that
define a name used near the cursor first, then those that mention the most of those names, then
file order.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from cgstudio.repo.index import STOPWORDS

LARGE_CHARS = 1500  # about 400 tokens: files above this are offered as chunks
MAX_LINES = 40
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINES = re.compile(
    r"\b(?:def|class|function|func|fn|struct|interface|type|enum|const|let|var)\s+([A-Za-z_]\w*)"
)


@dataclass(frozen=True)
class Chunk:
    """Lines ``start`` to ``end`` (0-based, end excluded) of a file, and the names it binds."""

    start: int
    end: int
    text: str
    defines: frozenset[str]


def identifiers(text: str) -> set[str]:
    """The identifiers of ``text`` as written, keywords and names under 3 characters left out."""
    return {w for w in _IDENT.findall(text) if len(w) > 2 and w.lower() not in STOPWORDS}


def split(path: str, text: str) -> list[Chunk]:
    """``text`` cut into chunks that cover it exactly; one chunk when it is small."""
    lines = text.splitlines(keepends=True)
    if len(text) <= LARGE_CHARS or len(lines) < 2:
        return [Chunk(0, len(lines), text, frozenset(_defines(path, text)))]
    starts = _python_starts(text, lines) if path.endswith(".py") else None
    if starts is None:
        starts = _block_starts(lines)
    bounds = sorted({0, *(s for s in starts if 0 < s < len(lines))})
    out = []
    for a, b in zip(bounds, [*bounds[1:], len(lines)], strict=True):
        body = "".join(lines[a:b])
        out.append(Chunk(a, b, body, frozenset(_defines(path, body))))
    return out


def rank_chunks(chunks: list[Chunk], near: set[str]) -> list[tuple[int, int]]:
    """``(order, score)`` for each chunk: its place by value (0 best) for the identifiers ``near``
    the cursor, and its score (definitions of those names weigh ten mentions; 0: unrelated)."""
    scores = []
    for c in chunks:
        defined = len(c.defines & near)
        mentioned = len(identifiers(c.text) & near)
        scores.append(10 * defined + mentioned)
    order = sorted(range(len(chunks)), key=lambda i: (-scores[i], i))
    place = {i: r for r, i in enumerate(order)}
    return [(place[i], scores[i]) for i in range(len(chunks))]


# -- where chunks start ----------------------------------------------------------------------------
def _python_starts(text: str, lines: list[str]) -> list[int] | None:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    starts: list[int] = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        starts.append(_with_comments(lines, _first_line(node)))
        if isinstance(node, ast.ClassDef) and (node.end_lineno or 0) - node.lineno + 1 > MAX_LINES:
            for sub in node.body:
                if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                    starts.append(_with_comments(lines, _first_line(sub)))
    return starts


def _first_line(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    """The 0-based line where a definition starts, its decorators included."""
    return min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1


def _with_comments(lines: list[str], start: int) -> int:
    """``start`` moved up over the comment lines right above it."""
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return start


def _block_starts(lines: list[str]) -> list[int]:
    """Starts of blank-line-separated blocks, joined while a chunk stays within ``MAX_LINES``;
    a longer block is cut every ``MAX_LINES`` lines."""
    blocks = [0]
    for i in range(1, len(lines)):
        if not lines[i - 1].strip() and lines[i].strip():
            blocks.append(i)
    starts: list[int] = []
    chunk_start = 0
    for b, nxt in zip(blocks, [*blocks[1:], len(lines)], strict=True):
        if b - chunk_start > 0 and nxt - chunk_start > MAX_LINES:
            starts.append(b)
            chunk_start = b
        while nxt - chunk_start > MAX_LINES:
            chunk_start += MAX_LINES
            starts.append(chunk_start)
    return starts


# -- what a chunk defines ----------------------------------------------------------------------------
def _defines(path: str, body: str) -> set[str]:
    if path.endswith(".py"):
        try:
            tree = ast.parse(_dedent(body))
        except (SyntaxError, ValueError):
            return _regex_defines(body)
        return _python_defines(tree)
    return _regex_defines(body)


def _dedent(body: str) -> str:
    """A method chunk cut out of a class, made parseable: its indentation taken off."""
    first = next((ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    pad = len(first) - len(first.lstrip())
    if not pad:
        return body
    return "".join(ln[pad:] if ln[:pad].isspace() else ln.lstrip() for ln in body.splitlines(keepends=True))


def bound_names(tree: ast.AST) -> set[str]:
    """Every name ``tree`` binds (imports excepted): functions, classes, methods, parameters,
    assigned names and assigned attributes (``self.x``)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            out.add(node.name)
        elif isinstance(node, ast.arg):
            out.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            out.add(node.attr)
    return out


def _python_defines(tree: ast.AST) -> set[str]:
    return {n for n in bound_names(tree) if len(n) > 2 and n not in ("self", "cls")}


def _regex_defines(body: str) -> set[str]:
    return set(_DEFINES.findall(body))
