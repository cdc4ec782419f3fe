"""Repository context in prompts, token-exact on the synthetic CodeGemma GGUF, and through the server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import cgstudio
from cgstudio.core.engine import Priority
from cgstudio.core.prompt import ContextFile
from cgstudio.generation.request import GenerationRequest
from cgstudio.repo import RepoContext, chunks
from cgstudio.session.model import CodeModel

BOS, FIM_PRE, FIM_SUF, FIM_MID, FILE_SEP = 2, 67, 69, 68, 70
BASE = "class Base:\n    pass\n"
UTIL = "from pkg.base import Base\n\ndef helper():\n    return Base()\n"
TEST = "from pkg.app import run\n\ndef test_run():\n    assert run()\n"
PREFIX = "from pkg.util import helper\n\ndef run():\n    return "
SUFFIX = "\n"


@pytest.fixture(scope="module")
def model(codegemma_paths: dict[str, Path]) -> Iterator[CodeModel]:
    m = cgstudio.load(str(codegemma_paths["control"]), n_ctx=1024)
    yield m
    m.close()


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    for rel, text in {
        "pkg/__init__.py": "",
        "pkg/base.py": BASE,
        "pkg/util.py": UTIL,
        "pkg/app.py": PREFIX + "helper()\n",
        "tests/test_app.py": TEST,
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (tmp_path / "outside.py").write_text("OUTSIDE_SECRET = 1\n")
    return root


def fim(path: str | None, files: tuple[ContextFile, ...] = (), prefix: str = PREFIX) -> GenerationRequest:
    return GenerationRequest("fim", prefix, SUFFIX, files=files, path=path)


def test_codegemma_packing_is_token_exact(model: CodeModel, ws: Path) -> None:
    """Path lines, <|file_separator|> after each file, dependencies before importers, test after
    imports, client files last, the current file's path line, and one BOS."""
    v = model.vocab
    bare, _ = model.prompt(fim("pkg/app.py", (ContextFile("notes.txt", "N = 1\n"),)))
    model.repo = RepoContext([ws], min_interval_s=0)
    try:
        prompt, _ = model.prompt(fim(str(ws / "pkg/app.py"), (ContextFile("notes.txt", "N = 1\n"),)))
    finally:
        model.repo = None
    assert prompt.tokens == [
        BOS,
        *v.plain("pkg/base.py\n" + BASE),
        FILE_SEP,
        *v.plain("pkg/util.py\n" + UTIL),
        FILE_SEP,
        *v.plain("tests/test_app.py\n" + TEST),
        FILE_SEP,
        *bare.tokens[1:],  # the client's file, then the current file's path line and the FIM prompt
    ]
    assert prompt.tokens.count(BOS) == 1
    assert [(c.path, c.reason) for c in prompt.context] == [
        ("pkg/base.py", "import"),
        ("pkg/util.py", "import"),
        ("tests/test_app.py", "test"),
        ("notes.txt", "client"),
    ]
    start, end = prompt.context_span
    assert (start, end) == (1, 1 + sum(c.tokens for c in prompt.context))
    assert prompt.tokens[end:][: len(v.plain("pkg/app.py\n"))] == v.plain("pkg/app.py\n")


def test_budget_drops_the_least_valuable_whole_files(model: CodeModel, ws: Path) -> None:
    model.repo = RepoContext([ws], min_interval_s=0)
    try:
        full, _ = model.prompt(fim("pkg/app.py", (ContextFile("notes.txt", "N = 1\n"),)))
        sizes = {c.path: c.tokens for c in full.context}
        keep = sizes["pkg/util.py"] + sizes["tests/test_app.py"]
        # The sources take turns: the direct import and the test fit; the client's file (the
        # client's turn comes next) and the deeper import do not.
        model.settings.guards.context_tokens = keep
        cut, _ = model.prompt(fim("pkg/app.py", (ContextFile("notes.txt", "N = 1\n"),)))
    finally:
        model.repo, model.settings.guards.context_tokens = None, None
    assert [c.path for c in cut.context] == ["pkg/util.py", "tests/test_app.py"]
    [warning] = [w for w in cut.warnings if w.code == "context_files_dropped"]
    assert "pkg/base.py (import)" in warning.message and "notes.txt (client)" in warning.message
    assert "pkg/util.py" not in warning.message
    # The default budget is half the context less max_tokens: all of this fits in 1024.
    assert not [w for w in full.warnings if w.code == "context_files_dropped"]


def test_confinement_filepath_and_client_filenames_are_labels(model: CodeModel, ws: Path) -> None:
    model.repo = RepoContext([ws], min_interval_s=0)
    outside = str(ws.parent / "outside.py")
    try:
        for label in ("../outside.py", outside, "pkg/../../outside.py", "/etc/passwd"):
            prompt, _ = model.prompt(fim(label, (ContextFile(outside, "GIVEN = 1\n"),)))
            text = model.vocab.render(prompt.tokens)
            assert "OUTSIDE_SECRET" not in text and "class Base" not in text, label
            assert [(c.path, c.reason) for c in prompt.context] == [(outside, "client")]
            assert "GIVEN = 1" in text  # what the client sent, under its label
        os.symlink(ws.parent / "outside.py", ws / "pkg" / "linked.py")
        prompt, _ = model.prompt(fim("pkg/linked.py"))
        assert prompt.context == [] and "OUTSIDE_SECRET" not in model.vocab.render(prompt.tokens)
    finally:
        model.repo = None


def test_without_a_workspace_nothing_is_read(model: CodeModel, ws: Path) -> None:
    prompt, _ = model.prompt(fim(str(ws / "pkg/app.py")))
    assert prompt.context == [] and "class Base" not in model.vocab.render(prompt.tokens)


def test_retrieved_and_recent_sources(model: CodeModel, ws: Path) -> None:
    (ws / "pkg/ledger.py").write_text(
        "class Ledger:\n    def reconcile_quarterly_totals(self):\n        pass\n"
    )
    model.repo = RepoContext([ws], min_interval_s=0)
    try:
        model.prompt(GenerationRequest("fim", "x = 1\n", "", path="pkg/scratch.py", client="me"))
        prompt, _ = model.prompt(fim("pkg/app.py", prefix=PREFIX + "book.reconcile_quarterly"))
        other, _ = model.prompt(
            GenerationRequest("fim", PREFIX, SUFFIX, path="pkg/app.py", client="someone-else")
        )
    finally:
        model.repo = None
    reasons = {c.path: c.reason for c in prompt.context}
    assert reasons.get("pkg/ledger.py") == "retrieved"
    assert ("pkg/scratch.py", "recent") not in [(c.path, c.reason) for c in prompt.context]  # another client
    assert "pkg/scratch.py" not in [c.path for c in other.context]


def test_recent_edits_of_the_same_client(model: CodeModel, ws: Path) -> None:
    model.repo = RepoContext([ws], min_interval_s=0)
    try:
        model.prompt(GenerationRequest("fim", "draft_value = 41\n", "", path="pkg/scratch.py", client="me"))
        prompt, _ = model.prompt(GenerationRequest("fim", PREFIX, SUFFIX, path="pkg/app.py", client="me"))
    finally:
        model.repo = None
    assert ("pkg/scratch.py", "recent") in [(c.path, c.reason) for c in prompt.context]
    assert "draft_value = 41" in model.vocab.render(prompt.tokens)


def test_background_work_is_not_a_recent_edit(model: CodeModel, ws: Path) -> None:
    # A speculative next completion (IDLE) holds ghost text the user never typed: not noted.
    model.repo = RepoContext([ws], min_interval_s=0)
    try:
        idle = GenerationRequest("fim", "draft_value = 41\n", "", path="pkg/scratch.py", client="me")
        idle.priority = Priority.IDLE
        model.prompt(idle)
        prompt, _ = model.prompt(GenerationRequest("fim", PREFIX, SUFFIX, path="pkg/app.py", client="me"))
    finally:
        model.repo = None
    assert "recent" not in [c.reason for c in prompt.context]
    assert "draft_value = 41" not in model.vocab.render(prompt.tokens)


def test_context_tokens_and_reuse_in_timings(model: CodeModel, ws: Path) -> None:
    model.repo = RepoContext([ws], min_interval_s=0)
    try:
        req = fim("pkg/app.py")
        first = model._final(req, {"max_tokens": 2, "temperature": 0}, None)
        second = model._final(
            fim("pkg/app.py", prefix=PREFIX + "h"), {"max_tokens": 2, "temperature": 0}, None
        )
    finally:
        model.repo = None
    assert first.timings.context_tokens > 0
    assert second.timings.context_tokens == first.timings.context_tokens
    # The next keystroke keeps the context in the KV cache: all of it is reused.
    assert second.timings.context_tokens_reused == second.timings.context_tokens


def big_module() -> str:
    """A large module whose one relevant definition lies far down, among unrelated ones."""
    parts = ['"""Invoices."""\n\nimport math\n\nRATE = 3\n']
    for i in range(6):
        parts.append(f"\n\ndef unrelated_{i}(x):\n    y = x * {i}\n    z = y + math.pi\n    return z - {i}\n")
    parts.append("\n\ndef compute_invoice_total(items, discount_rate=0):\n    return sum(items)\n")
    parts += [f"\n\ndef tail_{i}(a, b):\n    return a * b + {i}\n" for i in range(3)]
    return "".join(parts)


def test_a_recent_edit_in_a_chunked_import_is_kept(
    model: CodeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user just edited a large imported file, offered as chunks: the edited lines come as a
    recent chunk too, so a budget that keeps other chunks of that file does not lose them."""
    monkeypatch.setattr(chunks, "LARGE_CHARS", 400)
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg/big.py").write_text(big_module())
    prefix = "from pkg.big import compute_invoice_total\n\ndef run(items):\n    return compute_invoice_total("
    (ws / "pkg/app.py").write_text(prefix + "items)\n")
    model.repo = RepoContext([ws], min_interval_s=0)
    try:
        edit = "def tail_0():\n    freshly_edited_marker = 7\n"
        model.prompt(GenerationRequest("fim", edit, "", path="pkg/big.py", client="me"))
        prompt, _ = model.prompt(GenerationRequest("fim", prefix, "items)\n", path="pkg/app.py", client="me"))
    finally:
        model.repo = None
    assert ("pkg/big.py", "recent") in [(c.path, c.reason) for c in prompt.context]
    assert "freshly_edited_marker = 7" in model.vocab.render(prompt.tokens)


def test_budget_keeps_the_chunk_that_defines_the_name_at_the_cursor(
    model: CodeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large import is offered as chunks: with a small budget the definition of the name used
    at the cursor is kept, the unrelated chunks go, and the file still has one path line. Whole-file
    packing drops the file (checked with chunks.LARGE_CHARS raised past the file's size)."""
    monkeypatch.setattr(chunks, "LARGE_CHARS", 400)  # the synthetic vocabulary: ~2 characters a token
    big = big_module()
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg/big.py").write_text(big)
    prefix = "from pkg.big import compute_invoice_total\n\ndef run(items):\n    return compute_invoice_total("
    (ws / "pkg/app.py").write_text(prefix + "items)\n")
    model.repo = RepoContext([ws], min_interval_s=0)
    model.settings.guards.context_tokens = 60
    try:
        prompt, _ = model.prompt(fim("pkg/app.py", prefix=prefix))
        again, _ = model.prompt(fim("pkg/app.py", prefix=prefix + "it"))
    finally:
        model.repo, model.settings.guards.context_tokens = None, None
    text = model.vocab.render(prompt.tokens)
    assert "def compute_invoice_total(items, discount_rate=0):" in text
    assert "def unrelated_3" not in text and "def tail_0" not in text
    assert text.count("pkg/big.py\n") == 1
    assert [(c.path, c.reason) for c in prompt.context] == [("pkg/big.py", "import")]
    assert prompt.context[0].tokens <= 60
    [warning] = [w for w in prompt.warnings if w.code == "context_files_dropped"]
    lines = big.splitlines()
    n = next(i for i, ln in enumerate(lines) if ln.startswith("def unrelated_3")) + 1
    assert f"pkg/big.py lines {n}-{n + 5} (import)" in warning.message  # a chunk, by its lines
    # The next keystroke gets the same context bytes, so its KV cache is kept.
    start, end = prompt.context_span
    assert again.tokens[start:end] == prompt.tokens[start:end]


def test_a_large_file_whose_chunks_all_fit_reads_as_the_whole_file(
    model: CodeModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks, "LARGE_CHARS", 400)
    big = big_module()
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "pkg/big.py").write_text(big)
    prefix = "from pkg.big import compute_invoice_total\n\nx = "
    model.repo = RepoContext([ws], min_interval_s=0)
    model.settings.guards.context_tokens = 1000
    try:
        prompt, _ = model.prompt(
            GenerationRequest("fim", prefix, SUFFIX, path="pkg/app.py", sampling={"max_tokens": 16})
        )
    finally:
        model.repo, model.settings.guards.context_tokens = None, None
    start, end = prompt.context_span
    assert prompt.tokens[start:end] == [*model.vocab.plain("pkg/big.py\n" + big), FILE_SEP]
    assert not [w for w in prompt.warnings if w.code == "context_files_dropped"]
