"""Chunks of large context files: where they are cut, how they rank, and how packing orders them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.generation.request import GenerationRequest
from cgstudio.repo import RepoContext, chunks
from cgstudio.repo.chunks import MAX_LINES, identifiers, rank_chunks, split
from cgstudio.repo.packing import Candidate, pack

MODULE = '''"""Doc."""

import os

LIMIT = 3


@decorated
def first(a):
    return a


# about second
def second(b):
    return first(b)


OTHER = 1


class Third:
    def method(self):
        return OTHER
'''


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "LARGE_CHARS", 50)


def test_python_is_cut_at_top_level_definitions_and_covers_the_file() -> None:
    parts = split("m.py", MODULE)
    assert "".join(c.text for c in parts) == MODULE
    assert [c.text.splitlines()[0] for c in parts] == [
        '"""Doc."""',
        "@decorated",
        "# about second",
        "class Third:",
    ]
    assert [(c.start, c.end) for c in parts] == [(0, 7), (7, 12), (12, 20), (20, 23)]
    assert "OTHER" in parts[2].text  # a statement between definitions stays with the one before it
    assert parts[0].defines == {"LIMIT"} and parts[3].defines == {"Third", "method"}
    assert parts[1].defines == {"first"}


def test_small_files_stay_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chunks, "LARGE_CHARS", 10_000)
    [whole] = split("m.py", MODULE)
    assert whole.text == MODULE and whole.defines >= {"first", "second", "Third", "LIMIT"}


def test_a_long_class_is_cut_at_its_methods() -> None:
    methods = "".join(f"    def method_{i}(self):\n        x = {i}\n        return x\n\n" for i in range(15))
    text = f"import os\n\n\nclass Big:\n    '''Doc.'''\n    size = 1\n\n{methods}"
    parts = split("big.py", text)
    assert "".join(c.text for c in parts) == text
    assert parts[1].text.startswith("class Big:") and "def method_0" in parts[2].text
    assert len(parts) == 2 + 15 and all(c.end - c.start <= MAX_LINES for c in parts)
    assert parts[5].defines == {"method_3"}  # a method cut out of its class still parses


def test_other_languages_and_broken_python_are_cut_at_blank_lines() -> None:
    blocks = [f"function f{i}() {{\n" + "  x();\n" * 12 + "}\n" for i in range(6)]
    text = "\n".join(blocks)
    for path in ("a.js", "broken.py"):
        body = text if path == "a.js" else text + "def (:\n"
        parts = split(path, body)
        assert "".join(c.text for c in parts) == body
        assert all(c.end - c.start <= MAX_LINES for c in parts) and len(parts) >= 3
        assert all(c.text.startswith("function") for c in parts)
    long = "x = 1\n" * 100
    assert [c.end - c.start for c in split("b.js", long)] == [40, 40, 20]
    assert "f0" in split("a.js", text)[0].defines


def test_definitions_rank_first_then_mentions_then_file_order() -> None:
    parts = split("m.py", MODULE)
    near = identifiers("x = second(first(value))")
    ranks = rank_chunks(parts, near)
    order = sorted(range(len(parts)), key=lambda i: ranks[i][0])
    # first and second define names used at the cursor; second also mentions first: it leads.
    assert order == [2, 1, 0, 3]
    assert ranks[3][1] == 0 and ranks[0][1] == 0  # Third and the header name nothing near the cursor


def test_pack_keeps_relevant_chunks_of_any_import_before_unrelated_ones() -> None:
    cands = [
        Candidate("import", "a.py", "A0" * 10, 1, (0, 5), 0, 1),
        Candidate("import", "b.py", "B0" * 10, 1, (0, 5), 1, 1),
        Candidate("import", "b.py", "B1" * 10, 1, (5, 9), 0, 0),
        Candidate("test", "t.py", "T" * 5, 0, None, 0, 0),
    ]
    files, warnings = pack(cands, 40)  # one import chunk (24 characters) and the test (9) fit
    assert [(f.path, f.lines) for f in files] == [("b.py", (5, 9)), ("t.py", None)]
    ranks = {(f.path, f.lines): f.rank for f in pack(cands, 10_000)[0]}
    # The import's relevant chunk, the test, then the unrelated import chunks (file order).
    assert sorted(ranks, key=lambda k: ranks[k]) == [
        ("b.py", (5, 9)),
        ("t.py", None),
        ("a.py", (0, 5)),
        ("b.py", (0, 5)),
    ]
    assert (
        "a.py lines 1-5 (import)" in warnings[0].message and "b.py lines 1-5 (import)" in warnings[0].message
    )


def test_a_large_test_partner_comes_as_chunks_in_file_order(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    (ws / "tests").mkdir()
    (ws / "pkg/app.py").write_text("def run():\n    return 1\n")
    (ws / "tests/test_app.py").write_text(MODULE)
    ctx = RepoContext([ws], min_interval_s=0, sources={"test"})
    req = GenerationRequest("fim", "def run():\n    return second(", ")\n", path="pkg/app.py")
    out, warnings = ctx.extend(req, 2048)
    assert warnings == []
    assert [(f.path, f.reason, f.lines) for f in out.files] == [
        ("tests/test_app.py", "test", (0, 7)),
        ("tests/test_app.py", "test", (7, 12)),
        ("tests/test_app.py", "test", (12, 20)),
        ("tests/test_app.py", "test", (20, 23)),
    ]
    assert min(out.files, key=lambda f: f.rank).lines == (12, 20)  # defines ``second``
