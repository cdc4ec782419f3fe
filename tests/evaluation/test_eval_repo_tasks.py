"""``cgstudio eval repo``'s tasks on a tiny package written here: the identifier is defined only in
another file, and no context source ever shows the masked line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.evaluation.repo_run import CONDITION_SOURCES, Workspaces
from cgstudio.evaluation.repo_tasks import package_tasks, recent_edit, select_tasks
from cgstudio.generation.request import GenerationRequest

STORE = '''"""Ledgers."""

ZORBLAX_LIMIT = 7


class Ledger:
    def __init__(self):
        self.rows = []

    def settle_quarterly_balance(self, account, *, grace_days=0):
        total = sum(r for r in self.rows if r)
        return total + grace_days
'''

APP = """from . import store


def close_books(ledger, count):
    result = ledger.settle_quarterly_balance("acme", grace_days=3)
    if count > store.ZORBLAX_LIMIT:
        return None
    return result
"""

TEST_APP = """from pkg.app import close_books


def test_close_books():
    assert close_books(None, 100) is None
"""


def write_package(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    (root / "pkg" / "store.py").write_text(STORE, encoding="utf-8")
    (root / "pkg" / "app.py").write_text(APP, encoding="utf-8")
    (root / "tests" / "test_app.py").write_text(TEST_APP, encoding="utf-8")
    return root


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return write_package(tmp_path / "tinypkg")


def test_tasks_need_a_name_defined_only_in_another_file(package: Path) -> None:
    tasks = package_tasks("tinypkg", package)
    by_line = {t.line: t for t in tasks}
    assert set(by_line) == {5, 6}  # app.py's two lines that use store.py's names
    settle, limit = by_line[5], by_line[6]
    assert (settle.path, settle.def_path, settle.kind) == ("pkg/app.py", "pkg/store.py", "method")
    assert settle.identifier == "settle_quarterly_balance" and settle.def_line == 10
    assert settle.answer == 'result = ledger.settle_quarterly_balance("acme", grace_days=3)'
    assert (limit.identifier, limit.kind, limit.answer) == (
        "ZORBLAX_LIMIT",
        "constant",
        "if count > store.ZORBLAX_LIMIT:",
    )
    for t in tasks:
        assert t.prefix + t.answer + t.suffix == APP
        assert t.prefix.endswith("\n    ") and t.suffix.startswith("\n")
        assert t.identifier not in t.masked
    # close_books is used by the test file, but its import line names it: visible, so no task.
    assert not any(t.path.startswith("tests/") for t in tasks)


def test_selection_is_seeded_and_round_robin(tmp_path: Path) -> None:
    a, b = write_package(tmp_path / "a"), write_package(tmp_path / "b")
    first = select_tasks([("a", a), ("b", b)], seed=0, limit=None)
    assert [t.package for t in first] == ["a", "b", "a", "b"]
    assert [t.task_id for t in first] == [t.task_id for t in select_tasks([("a", a), ("b", b)], 0, None)]
    orders = {tuple(t.task_id for t in select_tasks([("a", a)], s, None)) for s in range(8)}
    assert len(orders) == 2  # the seed changes the order of a package's two tasks
    assert len(select_tasks([("a", a), ("b", b)], 0, 3)) == 3


def test_recent_edit_is_the_lines_around_the_definition(package: Path) -> None:
    task = next(t for t in package_tasks("tinypkg", package) if t.line == 5)
    before, after = recent_edit(task, STORE)
    assert before.endswith("    def settle_quarterly_balance(self, account, *, grace_days=0):\n")
    assert after.startswith("        total = sum(")


@pytest.mark.parametrize("condition", ["imports", "test", "retrieved", "recent", "all"])
def test_no_context_chunk_holds_the_masked_line(package: Path, tmp_path: Path, condition: str) -> None:
    ws_dir = tmp_path / "ws"
    ws_dir.mkdir()
    spaces = Workspaces([("tinypkg", package)], ws_dir)
    ctx = spaces.context
    ctx.sources = CONDITION_SOURCES[condition]
    for task in package_tasks("tinypkg", package):
        client = f"t:{task.task_id}"
        if condition in ("recent", "all"):
            before, after = recent_edit(task, STORE)
            ctx.recent.note(client, task.def_path, before, after)
        with spaces.masked(task):
            assert spaces.path(task).read_text(encoding="utf-8") == task.masked
            req = GenerationRequest(
                "fim", task.prefix, task.suffix, path=str(spaces.path(task)), client=client
            )
            extended, _ = ctx.extend(req, 4096)
        assert spaces.path(task).read_text(encoding="utf-8") == APP  # put back
        assert extended.path == "pkg/app.py"
        assert extended.files, f"{condition}: no context at all"
        assert {f.reason for f in extended.files} <= CONDITION_SOURCES[condition]
        for f in extended.files:
            assert task.answer not in f.text, f"{condition}: {f.path} ({f.reason}) holds the answer"
            assert f.path != "pkg/app.py"
        # The positive side: the file that defines the name reaches the model, except through the
        # test source alone (the test of app.py is tests/test_app.py).
        if condition != "test":
            assert any(task.identifier in f.text for f in extended.files), condition


def test_the_leak_check_can_fail(package: Path, tmp_path: Path) -> None:
    """The check above can fail: a second file holding A's released text is retrieved with the line."""
    (package / "pkg" / "app_copy.py").write_text(APP, encoding="utf-8")  # a second file with the line
    ws_dir = tmp_path / "ws"
    ws_dir.mkdir()
    spaces = Workspaces([("tinypkg", package)], ws_dir)
    spaces.context.sources = CONDITION_SOURCES["retrieved"]
    task = next(t for t in package_tasks("tinypkg", package) if t.path == "pkg/app.py")
    with spaces.masked(task):
        req = GenerationRequest("fim", task.prefix, task.suffix, path=str(spaces.path(task)))
        extended, _ = spaces.context.extend(req, 4096)
    # A line repeated in another file is fair context; the run's records flag it (answer_in_context).
    assert any(task.answer in f.text for f in extended.files)


def test_imports_come_from_the_saved_file_when_the_window_leaves_them_out(
    package: Path, tmp_path: Path
) -> None:
    """A client sends a window of the buffer; the import lines at the top are outside it. The
    server reads them from the saved (masked) file. Fails when imports come only from the request."""
    ws_dir = tmp_path / "ws"
    ws_dir.mkdir()
    spaces = Workspaces([("tinypkg", package)], ws_dir)
    spaces.context.sources = CONDITION_SOURCES["imports"]
    task = next(t for t in package_tasks("tinypkg", package) if t.line == 6)
    prefix, suffix = task.window(1, 1)
    assert "import" not in prefix + suffix
    with spaces.masked(task):
        req = GenerationRequest("fim", prefix, suffix, path=str(spaces.path(task)))
        extended, _ = spaces.context.extend(req, 4096)
    assert ("pkg/store.py", "import") in [(f.path, f.reason) for f in extended.files]
