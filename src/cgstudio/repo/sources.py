"""Where repository context comes from, in order of value: the files the current file imports,
its test (or its implementation), BM25-retrieved chunks, and the chunks the client edited recently.

Imports are read with line patterns rather than a parser, because the text at the cursor is
being typed and rarely parses. Python: ``import a.b`` and ``from a.b import c`` (a module found
anywhere in the workspace by its path suffix: ``a/b.py`` or ``a/b/__init__.py``, the shortest
path first), and relative ``from .m import x`` / ``from .. import y``. JavaScript and TypeScript:
relative specifiers (``./x``, ``../y``) of ``import``, ``export ... from``, ``import()`` and
``require()``, with the usual extensions and ``index`` files. Other languages have no import source.
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

from cgstudio.repo.index import TextChunk, WorkspaceIndex, terms

JS_EXTS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs")
_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w., \t]+)", re.M)
_PY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+\(?([\w., \t]*)", re.M)
_JS_SPEC = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"](\.{1,2}/[^'"\n]+)['"]""")


def language(rel: str) -> str | None:
    """``python``, ``js`` (JavaScript and TypeScript) or None: the languages with an import source."""
    if rel.endswith(".py"):
        return "python"
    return "js" if rel.endswith(JS_EXTS) else None


# -- imports -------------------------------------------------------------------------------------
def direct_imports(index: WorkspaceIndex, rel: str, text: str) -> list[str]:
    """The workspace files ``text`` (the file at ``rel``) imports, in the order it names them."""
    lang = language(rel)
    found: list[str] = []
    if lang == "python":
        found = _python_imports(index, rel, text)
    elif lang == "js":
        base = posixpath.dirname(rel)
        for spec in _JS_SPEC.findall(text):
            hit = _js_file(index, posixpath.normpath(posixpath.join(base, spec)))
            if hit is not None:
                found.append(hit)
    return [f for i, f in enumerate(found) if f != rel and f not in found[:i]]


def import_closure(index: WorkspaceIndex, rel: str, text: str, depth: int = 2) -> list[tuple[str, int]]:
    """The imports of ``text`` and, up to ``depth`` levels, theirs: ``(path, level)`` with every
    file after the files it imports (dependencies first, as the models were trained), the
    current file left out."""
    out: list[tuple[str, int]] = []
    done = {rel}

    def visit(path: str, level: int) -> None:
        done.add(path)
        body = index.text(path)
        if level < depth and body is not None:
            for dep in direct_imports(index, path, body):
                if dep not in done:
                    visit(dep, level + 1)
        out.append((path, level))

    for dep in direct_imports(index, rel, text):
        if dep not in done:
            visit(dep, 1)
    return out


def _python_imports(index: WorkspaceIndex, rel: str, text: str) -> list[str]:
    found: list[str] = []
    for m in _PY_IMPORT.finditer(text):
        for item in m.group(1).split(","):
            name = item.split()[0] if item.split() else ""
            if hit := _py_module(index, name):
                found.append(hit)
    for m in _PY_FROM.finditer(text):
        dots, module = m.group(1), m.group(2)
        names = [n.split()[0] for n in m.group(3).split(",") if n.split()]
        if dots:
            base = posixpath.dirname(rel)
            for _ in range(len(dots) - 1):
                base = posixpath.dirname(base)
            stem = posixpath.join(base, *module.split(".")) if module else base
            subs = [_py_file(index, posixpath.join(stem, n)) for n in names]
            found.extend(s for s in subs if s)
            own = stem if module else posixpath.join(base, "__init__")
            if hit := _py_file(index, own):
                found.append(hit)
        elif module:
            subs = [_py_module(index, f"{module}.{n}") for n in names]
            found.extend(s for s in subs if s)
            if hit := _py_module(index, module):
                found.append(hit)
    return found


def _py_file(index: WorkspaceIndex, stem: str) -> str | None:
    stem = stem.lstrip("/")
    for cand in (stem + ".py", stem + "/__init__.py"):
        if index.text(cand) is not None:
            return cand
    return None


def _py_module(index: WorkspaceIndex, dotted: str) -> str | None:
    if not dotted or not all(p.isidentifier() for p in dotted.split(".")):
        return None
    tail = dotted.replace(".", "/")
    for suffix in (tail + ".py", tail + "/__init__.py"):
        hits = [p for p in index.named(posixpath.basename(suffix)) if p == suffix or p.endswith("/" + suffix)]
        if hits:
            return min(hits, key=lambda p: (p.count("/"), p))
    return None


def _js_file(index: WorkspaceIndex, stem: str) -> str | None:
    if stem.startswith("../") or stem == "..":
        return None
    bare = stem[: -len(posixpath.splitext(stem)[1])] if stem.endswith(JS_EXTS) else stem
    cands = [stem, *(bare + e for e in JS_EXTS), *(f"{stem}/index{e}" for e in JS_EXTS)]
    return next((c for c in cands if index.text(c) is not None), None)


# -- the test beside an implementation -----------------------------------------------------------
def partner(index: WorkspaceIndex, rel: str) -> str | None:
    """The test of an implementation file, or the implementation of a test file: the candidate
    nearest ``rel`` in the tree (``test_x.py``/``x_test.py`` for ``x.py``; ``x.test.ts``,
    ``x.spec.ts`` for ``x.ts``)."""
    name = posixpath.basename(rel)
    lang = language(rel)
    if lang == "python":
        stem = name[:-3]
        if stem.startswith("test_"):
            names = [stem[5:] + ".py"]
        elif stem.endswith("_test"):
            names = [stem[:-5] + ".py"]
        else:
            names = [f"test_{stem}.py", f"{stem}_test.py"]
    elif lang == "js":
        stem, ext = posixpath.splitext(name)
        if stem.endswith((".test", ".spec")):
            names = [stem.rsplit(".", 1)[0] + e for e in JS_EXTS]
        else:
            names = [f"{stem}.{kind}{e}" for kind in ("test", "spec") for e in (ext, *JS_EXTS)]
    else:
        return None
    hits = [p for n in names for p in index.named(n) if p != rel]
    if not hits:
        return None
    here = rel.split("/")[:-1]

    def distance(p: str) -> tuple[int, str]:
        there = p.split("/")[:-1]
        common = 0
        for a, b in zip(here, there, strict=False):
            if a != b:
                break
            common += 1
        return (len(here) + len(there) - 2 * common, p)

    return min(hits, key=distance)


# -- retrieval -------------------------------------------------------------------------------------
def cursor_window(prefix: str, suffix: str, *, before: int = 12, after: int = 4) -> str:
    """The text around the cursor: the ``before`` lines up to it and the ``after`` lines past it."""
    head = "".join(prefix.splitlines(keepends=True)[-before:])
    tail = "".join(suffix.splitlines(keepends=True)[:after])
    return head + "\n" + tail


def cursor_query(prefix: str, suffix: str, *, before: int = 12, after: int = 4) -> list[str]:
    """BM25 query words: the identifiers of ``cursor_window``."""
    return terms(cursor_window(prefix, suffix, before=before, after=after))


def retrieve(index: WorkspaceIndex, query: list[str], k: int, skip: frozenset[str]) -> list[TextChunk]:
    """The ``k`` best BM25 chunks for ``query``, outside the files in ``skip``."""
    return index.search(query, k, skip=skip)


# -- what this client edited recently ------------------------------------------------------------
@dataclass(frozen=True)
class RecentChunk:
    path: str
    block: int  # the cursor's line // lines: one entry per region of a file
    text: str


class RecentChunks:
    """A ring buffer per client of the regions it edited: each request notes the lines around
    its cursor (replacing the note for the same region), the oldest note goes when a client has
    ``size``, and the least recently seen client goes beyond ``max_clients``. llama.vim keeps
    such a buffer on the client side; here the server keeps it, so every editor gets one."""

    def __init__(self, *, size: int = 16, lines: int = 16, max_clients: int = 256) -> None:
        self.size, self.lines, self.max_clients = size, lines, max_clients
        self._clients: OrderedDict[str, deque[RecentChunk]] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, client: str, path: str, prefix: str, suffix: str) -> None:
        before = prefix.splitlines(keepends=True)
        head = "".join(before[-(self.lines // 2) :])
        tail = "".join(suffix.splitlines(keepends=True)[: self.lines // 2])
        text = head + tail
        if not text.strip():
            return
        entry = RecentChunk(path, max(len(before) - 1, 0) // self.lines, text)
        with self._lock:
            ring = self._clients.pop(client, None) or deque(maxlen=self.size)
            for old in [c for c in ring if (c.path, c.block) == (entry.path, entry.block)]:
                ring.remove(old)
            ring.append(entry)
            self._clients[client] = ring
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)

    def recent(self, client: str, k: int, skip: frozenset[str]) -> list[RecentChunk]:
        """The ``k`` latest notes of ``client`` outside the files in ``skip``, newest first."""
        with self._lock:
            ring = list(self._clients.get(client, ()))
        return [c for c in reversed(ring) if c.path not in skip][:k]
