"""Packing: the sources' files and chunks in prompt order, each with its value rank.

Prompt order (what the model reads, top to bottom, before the current file):
imports with every file after the files it imports (dependencies first, as in training), the
test, retrieved chunks (by path and line, so the same set always reads the same), recent chunks
(oldest first, so a new note adds at the end), then the client's own files as sent. Context
always comes before the current file, and the same sources give the same bytes, so the KV cache
of the previous keystroke keeps it.

Value order (what the token budget keeps first, ``ContextFile.rank``): direct imports, deeper
imports, the test, retrieved chunks best first, recent chunks newest first, then the client's
files, the last sent first. ``prompts.fim`` drops from the least valuable end by exact token
counts; here only a character cap applies, so that a huge candidate set is never tokenized.
"""

from __future__ import annotations

from dataclasses import dataclass

from cgstudio.core.prompt import ContextFile, ContextReason, GuardWarning


@dataclass(frozen=True)
class Candidate:
    """A file or chunk a source offers: where it goes in the prompt is its place in the list."""

    reason: ContextReason
    path: str
    text: str
    value: int  # lower is more valuable, within its reason


REASON_VALUE: dict[ContextReason, int] = {"import": 0, "test": 1, "retrieved": 2, "recent": 3, "client": 4}


def pack(candidates: list[Candidate], max_chars: int) -> tuple[tuple[ContextFile, ...], list[GuardWarning]]:
    """The candidates (already in prompt order) as ranked ``ContextFile``s; the least valuable
    are left out while their text exceeds ``max_chars`` in all."""
    by_value = sorted(
        range(len(candidates)), key=lambda i: (REASON_VALUE[candidates[i].reason], candidates[i].value)
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
        gone = [f"{c.path} ({c.reason})" for i, c in enumerate(candidates) if i not in kept]
        warnings.append(
            GuardWarning(
                "context_files_dropped",
                f"{len(gone)} of {len(candidates)} context files were left out before tokenizing, "
                f"over {max_chars:,} characters in all: {', '.join(gone)}. Raise --ctx-size to keep them.",
            )
        )
    files = tuple(
        ContextFile(c.path, c.text, c.reason, rank[i]) for i, c in enumerate(candidates) if i in kept
    )
    return files, warnings
