"""The workspace index: the text files of one workspace, read again only when they change.

``refresh`` walks the root (never following a folder symlink, and following a file symlink only
when its target lies inside the root), honours ``.gitignore`` files at every level with
``pathspec``'s Git rules, skips binary files (a NUL byte or text that is not UTF-8) and files over
``max_file_bytes``, and stops adding files once ``max_total_bytes`` of text are indexed
(``capped`` then says so). A file is read again only when its size or modification time changed;
``reads`` counts the reads, so tests can check that a second refresh reads nothing.

The files are cut into chunks of ``chunk_lines`` lines, and ``search`` ranks the chunks with BM25
(``bm25s``) for a query of identifiers.
"""

from __future__ import annotations

import keyword
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pathspec

if TYPE_CHECKING:
    import bm25s

DEFAULT_MAX_FILE_BYTES = 256 * 1024
DEFAULT_MAX_TOTAL_BYTES = 32 * 1024 * 1024
ALWAYS_IGNORED = (".git/", ".hg/", ".svn/", "__pycache__/", "node_modules/", ".venv/", ".mypy_cache/")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
#: Keywords of the languages whose imports are resolved: they match everywhere and say nothing.
STOPWORDS = frozenset(k.lower() for k in keyword.kwlist) | {
    *("self", "this", "const", "let", "var", "function", "export", "new", "null", "undefined"),
}


def terms(text: str) -> list[str]:
    """The words BM25 sees: identifiers, lower-cased, each with its snake_case and camelCase parts."""
    out: list[str] = []
    for ident in _IDENT.findall(text):
        low = ident.lower()
        if low in STOPWORDS:
            continue
        out.append(low)
        parts = [p.lower() for piece in ident.split("_") for p in _CAMEL.findall(piece)]
        if len(parts) > 1:
            out.extend(p for p in parts if len(p) > 1 and p not in STOPWORDS)
    return out


@dataclass(frozen=True)
class TextChunk:
    """Lines ``start`` (0-based) to ``start + n`` of a file."""

    path: str
    start: int
    text: str


@dataclass
class _File:
    stamp: tuple[int, int]  # (size, mtime_ns)
    text: str | None  # None: binary, not UTF-8 or too large


class WorkspaceIndex:
    """The text files under ``root`` (already resolved), by POSIX path relative to it."""

    def __init__(
        self,
        root: Path,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        chunk_lines: int = 20,
        min_interval_s: float = 1.0,
    ) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.chunk_lines = chunk_lines
        self.min_interval_s = min_interval_s
        self.reads = 0  # files read since creation
        self.capped = False  # the last refresh stopped at max_total_bytes
        self._files: dict[str, _File] = {}
        self._by_name: dict[str, list[str]] = {}
        # Replaced whole by each rebuild, so a search running beside a refresh sees one version.
        self._ranked: tuple[list[TextChunk], bm25s.BM25 | None] = ([], None)
        self._lock = threading.Lock()
        self._last_refresh: float | None = None

    # -- reading ---------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> None:
        """Bring the index up to date with the disk; at most once per ``min_interval_s`` unless forced."""
        with self._lock:
            now = time.monotonic()
            if (
                not force
                and self._last_refresh is not None
                and now - self._last_refresh < self.min_interval_s
            ):
                return
            self._last_refresh = now
            seen: dict[str, _File] = {}
            total, changed, self.capped = 0, False, False
            for rel, path in self._walk():
                try:
                    st = path.stat()
                except OSError:
                    continue
                stamp = (st.st_size, st.st_mtime_ns)
                old = self._files.get(rel)
                entry = old if old is not None and old.stamp == stamp else self._read(path, stamp)
                changed |= entry is not old
                if entry.text is not None:
                    if total + len(entry.text) > self.max_total_bytes:
                        self.capped = True
                        break
                    total += len(entry.text)
                seen[rel] = entry
            changed |= seen.keys() != self._files.keys()
            self._files = seen
            if changed:
                self._rebuild()

    def _walk(self) -> list[tuple[str, Path]]:
        out: list[tuple[str, Path]] = []
        specs: dict[str, list[tuple[str, pathspec.PathSpec]]] = {
            "": [("", pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED))]
        }
        for folder, dirs, files in os.walk(self.root, followlinks=False):
            rel_dir = Path(folder).relative_to(self.root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir
            mine = list(specs.pop(rel_dir, []))
            if ".gitignore" in files:
                spec = self._gitignore(Path(folder) / ".gitignore")
                if spec is not None:
                    mine.append((rel_dir, spec))
            dirs.sort()
            kept = []
            for d in dirs:
                rel = f"{rel_dir}/{d}" if rel_dir else d
                if os.path.islink(os.path.join(folder, d)) or _ignored(mine, rel + "/"):
                    continue
                kept.append(d)
                specs[rel] = mine
            dirs[:] = kept
            for name in sorted(files):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                path = Path(folder) / name
                if _ignored(mine, rel) or not self._inside(path):
                    continue
                out.append((rel, path))
        return out

    def _inside(self, path: Path) -> bool:
        if not path.is_symlink():
            return path.is_file()
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return False
        return real.is_relative_to(self.root) and real.is_file()

    @staticmethod
    def _gitignore(path: Path) -> pathspec.PathSpec | None:
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        return pathspec.GitIgnoreSpec.from_lines(lines)

    def _read(self, path: Path, stamp: tuple[int, int]) -> _File:
        if stamp[0] > self.max_file_bytes:
            return _File(stamp, None)
        self.reads += 1
        try:
            data = path.read_bytes()
        except OSError:
            return _File(stamp, None)
        if b"\x00" in data[:8192]:
            return _File(stamp, None)
        try:
            return _File(stamp, data.decode("utf-8"))
        except UnicodeDecodeError:
            return _File(stamp, None)

    def _rebuild(self) -> None:
        by_name: dict[str, list[str]] = {}
        chunks: list[TextChunk] = []
        for rel, entry in self._files.items():
            if entry.text is None:
                continue
            by_name.setdefault(rel.rsplit("/", 1)[-1], []).append(rel)
            lines = entry.text.splitlines(keepends=True)
            for start in range(0, len(lines), self.chunk_lines):
                text = "".join(lines[start : start + self.chunk_lines])
                if text.strip():
                    chunks.append(TextChunk(rel, start, text))
        corpus = [terms(c.text) or [""] for c in chunks]
        bm25 = None
        if corpus:
            import bm25s  # here, not at the top: every CLI command imports this module (start-up time)

            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
        self._by_name, self._ranked = by_name, (chunks, bm25)

    # -- asking ----------------------------------------------------------------------------------
    def paths(self) -> list[str]:
        """Every indexed text file, in walk order."""
        return [rel for rel, f in self._files.items() if f.text is not None]

    def text(self, rel: str) -> str | None:
        """An indexed file's text (as read at the last refresh), or None."""
        entry = self._files.get(rel)
        return entry.text if entry is not None else None

    def named(self, basename: str) -> list[str]:
        """The indexed files with this base name."""
        return list(self._by_name.get(basename, ()))

    def search(self, query: list[str], k: int, *, skip: frozenset[str] = frozenset()) -> list[TextChunk]:
        """The ``k`` chunks that score best for ``query`` (BM25, positive scores only), best
        first, leaving out the files in ``skip``; ties keep index order."""
        chunks, bm25 = self._ranked
        if bm25 is None or not query or k <= 0:
            return []
        scores = bm25.get_scores(query)
        order = sorted(range(len(chunks)), key=lambda i: -float(scores[i]))
        out: list[TextChunk] = []
        for i in order:
            if float(scores[i]) <= 0 or len(out) >= k:
                break
            if chunks[i].path not in skip:
                out.append(chunks[i])
        return out


def _ignored(specs: list[tuple[str, pathspec.PathSpec]], rel: str) -> bool:
    for base, spec in specs:
        sub = rel[len(base) + 1 :] if base else rel
        if spec.match_file(sub):
            return True
    return False
