"""The tasks of ``cgstudio eval repo``: one masked line whose answer needs another file.

A package's ``.py`` files are parsed with ``ast`` (files that do not parse are skipped). A file
*binds* every name it defines: functions, classes, methods, module and class attributes,
parameters, assignment targets and ``self.x = ...`` attributes (imports are uses, not bindings).
An identifier is *cross-file* for file A when exactly one other file B of the package binds it,
as a function, class, method, attribute, constant or parameter, and no other file does.

A task masks one line of A: a simple statement on one line, or the one-line header of an
``if``, ``while``, ``for`` or ``with`` (not a ``def`` or ``class``), that uses such an identifier
(a name, an attribute or a keyword argument) which appears nowhere else in A, so that without B
the model has no way to see it. Names of builtins, of the methods of builtin types and of dunders
are left out (a ``.append`` is not a use of B's ``append``), and so are names shorter than 3
characters.

The cursor sits after the line's indentation: ``prefix`` is the file up to it, ``answer`` the rest
of the line (no newline), ``suffix`` the newline and the rest of the file. ``masked`` (prefix +
suffix) is the file as the editor holds it while the line is being typed: the workspace index
sees that version, never the answer.

Selection is deterministic: the candidates of each package, in (path, line) order, are shuffled
with ``random.Random(f"{seed}:{package}")``, and the packages are interleaved round-robin, so
``--limit N`` spreads over every package.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cgstudio.repo.chunks import bound_names

_SKIP_PARTS = frozenset({".git", "__pycache__", "build", "dist", ".tox", ".venv", "node_modules"})
MAX_FILE_BYTES = 256 * 1024
TEST_FOLDERS = frozenset({"tests", "test", "unittests", "testing"})
TEST_FILE = re.compile(r"(test_.*|.*_test)\.py")
_BUILTIN_TYPES = (str, bytes, list, dict, set, frozenset, tuple, int, float, object, type, BaseException)
COMMON = frozenset(
    {*dir(builtins), *keyword.kwlist, "self", "cls", "args", "kwargs"}
    | {name for t in _BUILTIN_TYPES for name in dir(t)}
)


@dataclass(frozen=True)
class Definition:
    path: str  # file B, relative to the package root
    line: int  # 1-based
    kind: str  # function, class, method, attribute, constant or parameter


@dataclass(frozen=True)
class RepoTask:
    """One masked line: ``prefix`` + ``answer`` + ``suffix`` is file ``path`` as released."""

    task_id: str  # "package/path:Lline"
    package: str
    path: str  # file A, relative to the package root (POSIX)
    line: int  # 1-based
    prefix: str
    answer: str
    suffix: str
    identifier: str
    kind: str
    def_path: str  # file B
    def_line: int

    def window(self, before: int | None, after: int | None) -> tuple[str, str]:
        """(prefix, suffix) as a client sends them: the last ``before`` lines before the cursor
        line (and its indentation) and the first ``after`` lines after it; None keeps all."""
        head = self.prefix.split("\n")
        tail = self.suffix.split("\n")
        prefix = "\n".join(head if before is None else head[-(before + 1) :])
        suffix = "\n".join(tail if after is None else tail[: after + 1])
        return prefix, suffix

    @property
    def masked(self) -> str:
        """File A as the editor holds it while the line is typed: the line's indentation only."""
        return self.prefix + self.suffix


def python_files(root: Path) -> dict[str, str]:
    """The package's ``.py`` files (relative POSIX path -> text), without links, caches or builds."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if _SKIP_PARTS & set(rel.parts) or p.is_symlink() or not p.is_file():
            continue
        if p.stat().st_size > MAX_FILE_BYTES:
            continue
        try:
            out[rel.as_posix()] = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
    return out


def _definitions(tree: ast.Module) -> Iterator[tuple[str, int, str]]:
    """(name, line, kind) for what a module defines that another file may use."""

    def params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[tuple[str, int, str]]:
        a = fn.args
        for arg in (*a.posonlyargs, *a.args, *a.kwonlyargs):
            yield arg.arg, arg.lineno, "parameter"

    def targets(node: ast.stmt) -> list[ast.expr]:
        if isinstance(node, ast.Assign):
            return node.targets
        return [node.target] if isinstance(node, ast.AnnAssign) else []

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.lineno, "function"
            yield from params(node)
        elif isinstance(node, ast.ClassDef):
            yield node.name, node.lineno, "class"
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield item.name, item.lineno, "method"
                    yield from params(item)
                for t in targets(item):
                    if isinstance(t, ast.Name):
                        yield t.id, t.lineno, "attribute"
        for t in targets(node):
            if isinstance(t, ast.Name):
                yield t.id, t.lineno, "constant"


def _uses(roots: list[ast.AST]) -> list[tuple[int, str]]:
    """(column, name) of the names, attributes and keyword arguments a statement reads."""
    found: list[tuple[int, str]] = []
    for node in (n for r in roots for n in ast.walk(r)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            found.append((node.col_offset, node.id))
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            found.append((node.end_col_offset or node.col_offset, node.attr))
        elif isinstance(node, ast.Call):
            found.extend((kw.value.col_offset, kw.arg) for kw in node.keywords if kw.arg)
    return sorted(found)


_BLOCKS = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.Match,
    ast.TryStar,
)


def _header(node: ast.stmt) -> list[ast.expr] | None:
    """The expressions of an ``if``/``while``/``for``/``with`` header, None for other blocks."""
    if isinstance(node, ast.If | ast.While):
        return [node.test]
    if isinstance(node, ast.For | ast.AsyncFor):
        return [node.target, node.iter]
    if isinstance(node, ast.With | ast.AsyncWith):
        return [e for item in node.items for e in (item.context_expr, item.optional_vars) if e is not None]
    return None


def _one_line_statements(tree: ast.Module) -> Iterator[tuple[int, list[ast.AST]]]:
    """(line, nodes) of each simple statement on one line, and of each one-line ``if``, ``while``,
    ``for`` or ``with`` header (its expressions only)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        if not isinstance(node, _BLOCKS):
            if node.lineno == node.end_lineno:
                yield node.lineno, [node]
        elif (head := _header(node)) and all(e.lineno == e.end_lineno == node.lineno for e in head):
            yield node.lineno, list(head)


def package_tasks(package: str, root: Path) -> list[RepoTask]:
    """Every task of one package, in (path, line) order: at most one per line."""
    files = python_files(root)
    trees: dict[str, ast.Module] = {}
    for rel, text in files.items():
        try:
            trees[rel] = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
    binders: defaultdict[str, set[str]] = defaultdict(set)
    for rel, tree in trees.items():
        for name in bound_names(tree):
            binders[name].add(rel)
    defs: dict[str, Definition] = {}
    for rel, tree in trees.items():
        for name, line, kind in _definitions(tree):
            if binders[name] == {rel} and name not in defs:
                defs[name] = Definition(rel, line, kind)
    tasks: list[RepoTask] = []
    for rel, tree in trees.items():
        lines = files[rel].splitlines(keepends=True)
        seen: set[int] = set()
        for line, nodes in sorted(_one_line_statements(tree), key=lambda s: s[0]):
            if line in seen:
                continue
            task = _task(package, rel, lines, line, nodes, defs)
            if task is not None:
                tasks.append(task)
                seen.add(line)
    return tasks


def _task(
    package: str, rel: str, lines: list[str], line: int, nodes: list[ast.AST], defs: dict[str, Definition]
) -> RepoTask | None:
    i = line - 1
    if i >= len(lines):
        return None
    text = lines[i]
    indent = text[: len(text) - len(text.lstrip(" \t"))]
    answer = text[len(indent) :].rstrip()
    if not 6 <= len(answer) <= 120 or answer.startswith("#"):
        return None
    prefix = "".join(lines[:i]) + indent
    suffix = ("\n" if text.endswith("\n") else "") + "".join(lines[i + 1 :])
    rest = prefix + suffix
    for _, name in _uses(nodes):
        d = defs.get(name)
        if d is None or d.path == rel or not _usable(name):
            continue
        if re.search(rf"\b{re.escape(name)}\b", rest):
            continue  # visible elsewhere in A: the model could copy it without B
        return RepoTask(
            f"{package}/{rel}:L{line}",
            package,
            rel,
            line,
            prefix,
            answer,
            suffix,
            name,
            d.kind,
            d.path,
            d.line,
        )
    return None


def _usable(name: str) -> bool:
    return len(name) >= 3 and name not in COMMON and not (name.startswith("__") and name.endswith("__"))


def select_tasks(
    packages: Iterable[tuple[str, Path]], seed: int, limit: int | None, implementation_only: bool = False
) -> list[RepoTask]:
    """The tasks of every package, each package's shuffled with its own seeded generator, taken
    round-robin across packages; the first ``limit`` of them. ``implementation_only`` leaves out
    the tasks in test code (``is_test_file``), which a package's tests cannot judge."""
    queues = []
    for name, root in packages:
        tasks = [t for t in package_tasks(name, root) if not (implementation_only and is_test_file(t.path))]
        random.Random(f"{seed}:{name}").shuffle(tasks)
        queues.append(tasks)
    out: list[RepoTask] = []
    depth = max((len(q) for q in queues), default=0)
    for j in range(depth):
        out.extend(q[j] for q in queues if j < len(q))
    return out if limit is None else out[:limit]


def is_test_file(path: str) -> bool:
    """A test module, a ``conftest.py``, or any file in a tests folder (helpers included)."""
    *folders, name = path.split("/")
    if any(f in TEST_FOLDERS or f.endswith("_tests") for f in folders):
        return True
    return name == "conftest.py" or TEST_FILE.fullmatch(name) is not None


def recent_edit(task: RepoTask, b_text: str, lines: int = 8) -> tuple[str, str]:
    """The simulated recent edit in file B: (text before, text after) a cursor on the line that
    defines the identifier, as the server's ring buffer notes an editor request."""
    body = b_text.splitlines(keepends=True)
    d = min(max(task.def_line - 1, 0), len(body))
    return "".join(body[max(0, d + 1 - lines) : d + 1]), "".join(body[d + 1 : d + 1 + lines])
