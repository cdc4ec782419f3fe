"""Repository context without a model: confinement, the index, each source, and packing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cgstudio.core.errors import SettingsError
from cgstudio.repo.index import WorkspaceIndex, terms
from cgstudio.repo.packing import Candidate, pack
from cgstudio.repo.sources import (
    RecentChunks,
    cursor_query,
    direct_imports,
    import_closure,
    partner,
)
from cgstudio.repo.workspace import locate, workspace_root


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def index_of(root: Path, **kw: int) -> WorkspaceIndex:
    idx = WorkspaceIndex(root.resolve(), min_interval_s=0, **kw)
    idx.refresh()
    return idx


# -- confinement -----------------------------------------------------------------------------------
def test_locate_maps_labels_inside_a_workspace_only(tmp_path: Path) -> None:
    ws = write(tmp_path / "ws", {"pkg/app.py": "x = 1\n"})
    write(tmp_path, {"outside.py": "SECRET = 1\n"})
    roots = (workspace_root(ws),)
    assert locate("pkg/app.py", roots).rel == "pkg/app.py"  # type: ignore[union-attr]
    assert locate(str(ws / "pkg/app.py"), roots).rel == "pkg/app.py"  # type: ignore[union-attr]
    assert locate(f"file://{ws}/pkg/app.py", roots).rel == "pkg/app.py"  # type: ignore[union-attr]
    assert locate("pkg/new_file.py", roots) is not None  # an unsaved file still has a place
    # Labels that point elsewhere name nothing.
    assert locate("../outside.py", roots) is None
    assert locate("pkg/../../outside.py", roots) is None
    assert locate(str(tmp_path / "outside.py"), roots) is None
    assert locate("/etc/passwd", roots) is None
    assert locate(str(ws), roots) is None  # the root itself is no file
    assert locate(None, roots) is None and locate("app.py", ()) is None


def test_a_symlink_out_of_the_workspace_names_nothing(tmp_path: Path) -> None:
    ws = write(tmp_path / "ws", {"a.py": "A = 1\n"})
    write(tmp_path, {"secret/key.py": "SECRET = 'hunter2'\n"})
    os.symlink(tmp_path / "secret" / "key.py", ws / "link.py")
    os.symlink(tmp_path / "secret", ws / "linkdir")
    assert locate("link.py", (workspace_root(ws),)) is None
    assert locate("linkdir/key.py", (workspace_root(ws),)) is None
    idx = index_of(ws)
    assert idx.paths() == ["a.py"]  # neither link was followed
    assert all("hunter2" not in c.text for c in idx.search(["secret"], 5))


def test_workspace_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such folder"):
        workspace_root(tmp_path / "missing")


# -- the index -------------------------------------------------------------------------------------
def test_index_is_incremental(tmp_path: Path) -> None:
    ws = write(tmp_path, {"a.py": "A = 1\n", "b.py": "B = 2\n", "sub/c.py": "C = 3\n"})
    idx = index_of(ws)
    assert idx.reads == 3
    idx.refresh()
    assert idx.reads == 3  # nothing changed: nothing read
    (ws / "b.py").write_text("B = 22222\n")  # size changes
    idx.refresh()
    assert idx.reads == 4 and idx.text("b.py") == "B = 22222\n"
    (ws / "a.py").unlink()
    idx.refresh()
    assert idx.reads == 4 and idx.text("a.py") is None


def test_index_throttles_refreshes(tmp_path: Path) -> None:
    ws = write(tmp_path, {"a.py": "A = 1\n"})
    idx = WorkspaceIndex(ws.resolve(), min_interval_s=3600)
    idx.refresh()
    (ws / "b.py").write_text("B = 2\n")
    idx.refresh()
    assert idx.text("b.py") is None  # within min_interval_s
    idx.refresh(force=True)
    assert idx.text("b.py") == "B = 2\n"


def test_index_skips_ignored_binary_and_huge_files(tmp_path: Path) -> None:
    ws = write(
        tmp_path,
        {
            ".gitignore": "build/\n*.log\n!keep.log\n",
            "src/a.py": "A = 1\n",
            "build/out.py": "GENERATED = 1\n",
            "x.log": "noise\n",
            "keep.log": "kept\n",
            "src/.gitignore": "local_*.py\n",
            "src/local_conf.py": "LOCAL = 1\n",
            "huge.py": "H = 1\n" * 100,
            ".git/config": "[core]\n",
        },
    )
    (ws / "blob.bin").write_bytes(b"\x00\x01\x02abc")
    (ws / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    idx = index_of(ws, max_file_bytes=200)
    assert sorted(idx.paths()) == [".gitignore", "keep.log", "src/.gitignore", "src/a.py"]


def test_index_total_cap_is_reported(tmp_path: Path) -> None:
    ws = write(tmp_path, {f"m{i}.py": f"V{i} = {'x' * 50}\n" for i in range(10)})
    idx = index_of(ws, max_total_bytes=200)
    assert idx.capped
    assert 0 < len(idx.paths()) < 10
    assert not index_of(ws).capped


def test_terms_split_identifiers() -> None:
    assert terms("def getUserName(self, max_len): return None") == [
        "getusername",
        "get",
        "user",
        "name",
        "max_len",
        "max",
        "len",
    ]


# -- sources ---------------------------------------------------------------------------------------
PY_WS = {
    "src/shop/__init__.py": "",
    "src/shop/base.py": "class Base:\n    pass\n",
    "src/shop/util.py": "from shop.base import Base\n\ndef helper():\n    return Base()\n",
    "src/shop/models.py": "from .base import Base\n\nclass Ledger(Base):\n    pass\n",
    "src/shop/app.py": "import shop.util\nfrom .models import Ledger\nfrom . import pricing\n",
    "src/shop/pricing.py": "RATE = 3\n",
    "tests/test_app.py": "from shop.app import run\n",
    "web/lib/format.ts": "export const f = 1\n",
    "web/lib/index.ts": "export * from './format'\n",
    "web/main.ts": "import { f } from './lib/format.js'\nconst g = require('./lib')\nimport x from '../up'\n",
    "web/main.test.ts": "import './main'\n",
}


def test_python_imports_resolve_absolute_and_relative(tmp_path: Path) -> None:
    idx = index_of(write(tmp_path, PY_WS))
    text = PY_WS["src/shop/app.py"]
    assert direct_imports(idx, "src/shop/app.py", text) == [
        "src/shop/util.py",
        "src/shop/models.py",
        "src/shop/pricing.py",
        "src/shop/__init__.py",
    ]
    # Dependencies come before the files that import them.
    closure = [p for p, _ in import_closure(idx, "src/shop/app.py", text)]
    assert closure.index("src/shop/base.py") < closure.index("src/shop/util.py")
    assert closure.index("src/shop/base.py") < closure.index("src/shop/models.py")
    assert dict(import_closure(idx, "src/shop/app.py", text))["src/shop/base.py"] == 2


def test_js_relative_imports(tmp_path: Path) -> None:
    idx = index_of(write(tmp_path, PY_WS))
    assert direct_imports(idx, "web/main.ts", PY_WS["web/main.ts"]) == [
        "web/lib/format.ts",
        "web/lib/index.ts",
    ]


def test_test_beside_implementation_and_back(tmp_path: Path) -> None:
    idx = index_of(write(tmp_path, PY_WS))
    assert partner(idx, "src/shop/app.py") == "tests/test_app.py"
    assert partner(idx, "tests/test_app.py") == "src/shop/app.py"
    assert partner(idx, "web/main.ts") == "web/main.test.ts"
    assert partner(idx, "web/main.test.ts") == "web/main.ts"
    assert partner(idx, "src/shop/util.py") is None
    assert partner(idx, "README.md") is None


def test_bm25_retrieves_the_chunk_with_the_cursor_identifiers(tmp_path: Path) -> None:
    files = {f"noise{i}.py": f"def unrelated_{i}(a, b):\n    return a + b\n" for i in range(8)}
    files["ledger.py"] = (
        "class Ledger:\n    def reconcile_quarterly_totals(self, rows):\n        return rows\n"
    )
    files["cur.py"] = ""
    idx = index_of(write(tmp_path, files))
    query = cursor_query("book = Ledger()\nbook.reconcile_quarterly", "\n")
    hits = idx.search(query, 2, skip=frozenset({"cur.py"}))
    assert hits and hits[0].path == "ledger.py"
    assert idx.search(query, 2, skip=frozenset({"ledger.py"})) == []  # only positive scores


def test_recent_ring_buffer_per_client() -> None:
    ring = RecentChunks(size=3, lines=4, max_clients=2)
    ring.note("a", "x.py", "x1\nx2\n", "x3\n")
    ring.note("a", "y.py", "y1\n", "")
    ring.note("a", "y.py", "y1 changed\n", "")  # the same region: replaced
    ring.note("b", "z.py", "z1\n", "")
    assert [c.path for c in ring.recent("a", 5, frozenset())] == ["y.py", "x.py"]
    assert ring.recent("a", 5, frozenset())[0].text == "y1 changed\n"
    assert [c.path for c in ring.recent("a", 5, frozenset({"y.py"}))] == ["x.py"]
    assert [c.path for c in ring.recent("b", 5, frozenset())] == ["z.py"]
    for i in range(5):
        ring.note("a", f"f{i}.py", f"line {i}\n", "")
    assert len(ring.recent("a", 10, frozenset())) == 3  # the ring's size
    ring.note("c", "w.py", "w\n", "")
    assert ring.recent("b", 5, frozenset()) == []  # the least recent client went


# -- packing ---------------------------------------------------------------------------------------
def test_pack_ranks_by_value_and_keeps_prompt_order() -> None:
    cands = [
        Candidate("import", "deep.py", "D", 2),
        Candidate("import", "direct.py", "I", 1),
        Candidate("test", "test_x.py", "T", 0),
        Candidate("retrieved", "r.py", "R", 0),
        Candidate("recent", "old.py", "O", 1),
        Candidate("recent", "new.py", "N", 0),
        Candidate("client", "c1", "C1", 2),
        Candidate("client", "c2", "C2", 1),
    ]
    files, warnings = pack(cands, 10_000)
    assert [f.path for f in files] == [c.path for c in cands]  # prompt order as given
    by_rank = [f.path for f in sorted(files, key=lambda f: f.rank)]
    # The sources take turns: each one's best, then each one's second.
    assert by_rank == ["direct.py", "test_x.py", "r.py", "new.py", "c2", "deep.py", "old.py", "c1"]
    assert warnings == []
    files, warnings = pack(cands, 34)  # 10 + 10 + 5 + 7 characters fit; the next (4) does not
    assert [f.path for f in files] == ["direct.py", "test_x.py", "r.py", "new.py"]
    assert warnings[0].code == "context_files_dropped"
    assert "deep.py (import)" in warnings[0].message and "c1 (client)" in warnings[0].message


def test_pack_keeps_one_of_each_source_before_a_second_of_any() -> None:
    """A wide import closure no longer fills the budget alone: the recent chunk stays."""
    cands = [Candidate("import", f"m{i}.py", "x" * 40, i) for i in range(6)]
    cands.append(Candidate("recent", "edited.py", "y" * 40, 0))
    files, _warnings = pack(cands, 3 * 50)
    assert {f.path for f in files} == {"m0.py", "edited.py", "m1.py"}


def test_turns_are_counted_within_each_tier() -> None:
    """Chunks that name nothing near the cursor take turns among themselves: an import's first
    such chunk comes before a test's second, however many relevant chunks the import had."""
    cands = [Candidate("import", "big.py", f"I{k}", 0, (k, k + 1), k, 0) for k in range(4)]
    cands.append(Candidate("import", "big.py", "I-other", 0, (9, 10), 4, 1))
    cands += [Candidate("test", "test_big.py", f"T{k}", 0, (k, k + 1), k, 1) for k in range(4)]
    files, _ = pack(cands, 10_000)
    order = [f.text for f in sorted(files, key=lambda f: f.rank)]
    assert order[:4] == ["I0", "I1", "I2", "I3"]  # every relevant chunk first
    assert order[4:7] == ["I-other", "T0", "T1"]
