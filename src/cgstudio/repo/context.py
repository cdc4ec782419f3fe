"""``RepoContext``: the repository context of a request whose file lies inside a workspace.

``extend(req, n_ctx)`` returns the request with the context files put before the client's own
(``input_extra``, ``context_files``): the files the current file imports, its test, BM25-retrieved
chunks and the client's recent edits (``sources``), in prompt order and ranked by value
(``packing``). A large import or test file is offered as chunks (``chunks``), ranked by the
identifiers near the cursor, so the budget drops the chunks that matter least rather than the
whole file. A request whose ``path`` is missing or names no workspace file comes back as it
was, so without ``--workspace`` nothing from disk is read. ``prompts.fim`` then packs the files in
the family's multi-file format within the token budget.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Sequence

from cgstudio.core.engine import Priority
from cgstudio.core.prompt import ContextReason, GuardWarning
from cgstudio.generation.request import GenerationRequest
from cgstudio.repo.chunks import identifiers, rank_chunks, split
from cgstudio.repo.index import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_TOTAL_BYTES, WorkspaceIndex
from cgstudio.repo.packing import Candidate, pack
from cgstudio.repo.sources import RecentChunks, cursor_query, cursor_window, import_closure, partner
from cgstudio.repo.workspace import locate, workspace_root

MODES = ("fim", "plain", "infill")  # the requests that show context files
CHARS_PER_CTX_TOKEN = 6  # the character cap before tokenizing: generous, tokens are ~3-4 characters
SOURCES: frozenset[ContextReason] = frozenset({"import", "test", "retrieved", "recent", "client"})


class RepoContext:
    """The configured workspaces, their indexes, and the per-client ring buffer of recent edits."""

    def __init__(
        self,
        folders: Sequence[str | os.PathLike[str]],
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
        retrieve_k: int = 3,
        recent_k: int = 3,
        min_interval_s: float = 1.0,
        sources: Collection[ContextReason] = SOURCES,
    ) -> None:
        """``sources``: the sources that run (all by default); ``cgstudio eval repo`` measures
        each alone by setting ``self.sources`` between requests."""
        self.sources = frozenset(sources)
        self.roots = tuple(dict.fromkeys(workspace_root(f) for f in folders))
        self.indexes = [
            WorkspaceIndex(
                r,
                max_file_bytes=max_file_bytes,
                max_total_bytes=max_total_bytes,
                min_interval_s=min_interval_s,
            )
            for r in self.roots
        ]
        self.recent = RecentChunks()
        self.retrieve_k, self.recent_k = retrieve_k, recent_k

    def extend(self, req: GenerationRequest, n_ctx: int) -> tuple[GenerationRequest, list[GuardWarning]]:
        """``req`` with its repository context, and warnings (a capped index, files left out)."""
        if req.mode not in MODES or (where := locate(req.path, self.roots)) is None:
            return req, []
        index = self.indexes[where.workspace]
        index.refresh()
        rel, suffix = where.rel, req.suffix if req.mode != "plain" else ""
        prefix = req.prompt + req.middle
        on = self.sources
        # The saved file's imports too: clients send a window of the buffer (llama.vim, Continue),
        # which often leaves out the import lines at the top.
        own = f"{index.text(rel) or ''}\n{prefix}{suffix}"
        imports = import_closure(index, rel, own) if "import" in on else []
        near = identifiers(cursor_window(prefix, suffix))
        cands = [c for p, level in imports for c in _offer("import", p, index.text(p) or "", level, near)]
        whole = {rel, *(p for p, _ in imports)}
        if "test" in on and (test := partner(index, rel)) is not None and test not in whole:
            cands += _offer("test", test, index.text(test) or "", 0, near)
            whole.add(test)
        skip = frozenset(whole)
        # A recent edit in a file offered as chunks still counts: the budget may keep other chunks
        # of that file, and the lines the user just edited are the likeliest to matter.
        chunked = {c.path for c in cands if c.lines is not None}
        found = (
            index.search(cursor_query(prefix, suffix), self.retrieve_k, skip=skip)
            if "retrieved" in on
            else []
        )
        retrieved = sorted(enumerate(found), key=lambda p: (p[1].path, p[1].start))
        cands += [Candidate("retrieved", c.path, c.text, score_rank) for score_rank, c in retrieved]
        recent = self.recent.recent(req.client, self.recent_k, skip - chunked) if "recent" in on else []
        cands += [Candidate("recent", c.path, c.text, age) for age, c in reversed(list(enumerate(recent)))]
        if req.priority != Priority.IDLE:  # background work (a speculation) is not the user's edit
            self.recent.note(req.client, rel, prefix, suffix)
        n = len(req.files)
        if "client" in on:
            cands += [Candidate("client", f.path, f.text, n - j) for j, f in enumerate(req.files)]
        files, warnings = pack(cands, CHARS_PER_CTX_TOKEN * n_ctx)
        if index.capped:
            warnings.insert(0, _capped(index))
        return dataclasses.replace(req, files=files, path=rel), warnings


def _offer(reason: ContextReason, path: str, text: str, value: int, near: set[str]) -> list[Candidate]:
    """A file as one candidate, or as its chunks in file order when it is large; each ranked by
    what it says about the identifiers ``near`` the cursor."""
    chunks = split(path, text)
    ranks = rank_chunks(chunks, near)
    if len(chunks) == 1:
        return [Candidate(reason, path, text, value, tier=int(ranks[0][1] == 0))]
    return [
        Candidate(reason, path, c.text, value, (c.start, c.end), sub, int(score == 0))
        for c, (sub, score) in zip(chunks, ranks, strict=True)
    ]


def _capped(index: WorkspaceIndex) -> GuardWarning:
    return GuardWarning(
        "workspace_capped",
        f"workspace {index.root} holds more than {index.max_total_bytes // (1 << 20)} MiB of text "
        "files; the rest were not indexed. Add .gitignore rules for generated or vendored files, "
        "or serve a smaller folder as --workspace.",
    )
