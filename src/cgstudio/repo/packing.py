"""Packing: the sources' files and chunks in prompt order, each with its value rank.

Prompt order (what the model reads, top to bottom, before the current file):
imports with every file after the files it imports (dependencies first, as in training), the
test, retrieved chunks (by path and line, so the same set always reads the same), recent chunks
(oldest first, so a new note adds at the end), then the client's own files as sent. Context
always comes before the current file, and the same sources give the same bytes, so the KV cache
of the previous keystroke keeps it.

Value order (what the token budget keeps first, ``ContextFile.rank``) takes turns between the
sources, so that no source fills the budget alone: each source's best candidate (imports, then
the test, retrieved, recent and client at equal turns), then each one's second, and so on. Within
a source the order is: direct imports before deeper ones, retrieved chunks best first, recent
chunks newest first, the client's files the last sent first. A large import or test file comes as
chunks (``chunks``): within its source, the chunks that define or mention identifiers near the
cursor come before those that do not, then by file value, then by the chunk's own rank; a chunk
or file that names nothing near the cursor waits until every source's relevant ones are in. In
the prompt a file's kept chunks still read in file order behind one path line. ``prompts.fim``
drops from the least valuable end by exact token counts; here only a character cap applies, so
that a huge candidate set is never tokenized.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from cgstudio.core.prompt import ContextFile, ContextReason, GuardWarning, context_label


@dataclass(frozen=True)
class Candidate:
    """A file or chunk a source offers: where it goes in the prompt is its place in the list."""

    reason: ContextReason
    path: str
    text: str
    value: int  # lower is more valuable, within its reason
    lines: tuple[int, int] | None = None  # a chunk of the file: its lines (0-based, end excluded)
    sub: int = 0  # a chunk's rank within its file (0: the most relevant to the cursor)
    tier: int = 0  # 1: a chunk or file that names nothing near the cursor


REASON_VALUE: dict[ContextReason, int] = {"import": 0, "test": 1, "retrieved": 2, "recent": 3, "client": 4}


def pack(candidates: list[Candidate], max_chars: int) -> tuple[tuple[ContextFile, ...], list[GuardWarning]]:
    """The candidates (already in prompt order) as ranked ``ContextFile``s; the least valuable
    are left out while their text exceeds ``max_chars`` in all."""

    turn: dict[int, int] = {}  # each candidate's place within its own source and tier
    seen: Counter[tuple[ContextReason, int]] = Counter()
    for i in sorted(
        range(len(candidates)), key=lambda i: (candidates[i].tier, candidates[i].value, candidates[i].sub)
    ):
        group = (candidates[i].reason, candidates[i].tier)
        turn[i] = seen[group]
        seen[group] += 1
    by_value = sorted(
        range(len(candidates)),
        key=lambda i: (candidates[i].tier, turn[i], REASON_VALUE[candidates[i].reason]),
    )
    rank = {i: r for r, i in enumerate(by_value)}
    kept: set[int] = set()
    used = 0
    for i in by_value:
        size = len(candidates[i].path) + len(candidates[i].text)
        if used + size <= max_chars:
            kept.add(i)
            used += size
    warnings = []
    if len(kept) < len(candidates):
        gone = [context_label(c.path, c.reason, c.lines) for i, c in enumerate(candidates) if i not in kept]
        warnings.append(
            GuardWarning(
                "context_files_dropped",
                f"{len(gone)} of {len(candidates)} context files or chunks were left out before tokenizing, "
                f"over {max_chars:,} characters in all: {', '.join(gone)}. Raise --ctx-size to keep them.",
            )
        )
    files = tuple(
        ContextFile(c.path, c.text, c.reason, rank[i], c.lines) for i, c in enumerate(candidates) if i in kept
    )
    return files, warnings
