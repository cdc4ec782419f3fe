"""pass@1 of ``cgstudio eval repo`` with a package's own tests, run in the real eval sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.evaluation import repo_tests
from cgstudio.evaluation.repo_report import summarise, table
from cgstudio.evaluation.repo_run import RepoRecord
from cgstudio.evaluation.repo_tasks import RepoTask

USE = "from pkg.mod import helper\n\n\ndef answer():\n    value = helper()\n    return value + 1\n"


def _package(root: Path, *, broken: bool = True) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("def helper(step=0):\n    return 41 + step\n")
    (root / "pkg" / "use.py").write_text(USE)
    (root / "tests").mkdir()
    (root / "tests" / "__init__.py").write_text("")  # not a test module
    (root / "tests" / "test_use.py").write_text(
        "from pkg.use import answer\n\n\ndef test_answer():\n    assert answer() == 42\n"
    )
    if broken:  # needs a module nobody has: left out by the baseline
        (root / "tests" / "test_needs_dep.py").write_text("import no_such_dependency_xyz\n")
    return root


def _task(path: str = "pkg/use.py", text: str = USE, line: str = "value = helper()") -> RepoTask:
    at = text.index(line)
    return RepoTask(
        task_id=f"pkg/{path}:L5", package="pkg", path=path, line=5, prefix=text[:at], answer=line,
        suffix=text[at + len(line):], identifier="helper", kind="function", def_path="pkg/mod.py",
        def_line=1,
    )  # fmt: skip


def test_baseline_keeps_only_the_test_files_that_pass_on_the_released_code(tmp_path: Path) -> None:
    suite = repo_tests.PackageTests("pkg", _package(tmp_path))
    assert suite.baseline() == ["tests/test_use.py"]
    assert list(suite.skipped) == ["tests/test_needs_dep.py"]
    assert (
        suite.skipped["tests/test_needs_dep.py"]
        == "failed: ModuleNotFoundError: No module named 'no_such_dependency_xyz'"
    )


def test_completions_are_judged_by_the_tests(tmp_path: Path) -> None:
    suite = repo_tests.PackageTests("pkg", _package(tmp_path, broken=False))
    task = _task()
    right, equivalent, wrong = "value = helper()", "  value = 41", "value = helper(2)"
    hostile = "value = helper(); import os; os._exit(0)"  # ends the run early with status 0
    verdict = repo_tests.score_task(suite, task, [right, equivalent, wrong, hostile])
    assert verdict.covered is True
    assert verdict.results == {right: True, equivalent: True, wrong: False, hostile: False}
    assert repo_tests.MUTANT_NAME in repo_tests.mutant_text(task)


def test_lines_the_tests_do_not_reach_and_test_code_are_not_scored(tmp_path: Path) -> None:
    root = _package(tmp_path, broken=False)
    extra = USE + "\n\ndef unused():\n    return helper(1)\n"
    (root / "pkg" / "use.py").write_text(extra)
    suite = repo_tests.PackageTests("pkg", root)
    untested = _task(text=extra, line="return helper(1)")
    assert repo_tests.score_task(suite, untested, ["return 0"]).covered is False
    in_test = _task(path="tests/test_use.py", text=(root / "tests/test_use.py").read_text(), line="answer()")
    assert repo_tests.score_task(suite, in_test, ["1"]) == repo_tests.TaskTests(False, {"1": None})


def test_a_package_without_runnable_tests_has_no_pass_at_1(tmp_path: Path) -> None:
    root = _package(tmp_path)
    (root / "tests" / "test_use.py").unlink()
    suite = repo_tests.PackageTests("pkg", root)
    assert repo_tests.score_task(suite, _task(), ["value = helper()"]).covered is None


@pytest.mark.parametrize("path", ["tests/helpers.py", "a/conftest.py", "pkg/test_x.py", "typing_tests/b.py"])
def test_test_code_is_recognised(path: str) -> None:
    assert repo_tests.is_test_file(path)
    assert not repo_tests.is_test_file("pkg/testing_utils.py")


def _record(condition: str, completion: str) -> RepoRecord:
    return RepoRecord(
        "pkg/pkg/use.py:L5", condition, "helper", "function", "pkg/mod.py", "value = helper()", completion,
        False, False, 0.0, 0.5, False, 0, [], False, 0.1, 10, 0.1, 3, "stop", "single_line",
    )  # fmt: skip


def test_score_records_fills_the_records_and_the_report_counts_them(tmp_path: Path) -> None:
    runs: list[str] = []

    def runner(source: str, limits: repo_tests.Limits) -> repo_tests.Outcome:
        runs.append(source)
        return repo_tests._sandboxed(source, limits)

    records = [_record("none", "value = 41"), _record("all", "value = helper(3)"), _record("x", "value = 41")]
    task = _task()
    task = RepoTask(**{**task.__dict__, "task_id": "pkg/pkg/use.py:L5"})
    suites = repo_tests.score_records(records, [task], [("pkg", _package(tmp_path))], runner=runner)
    assert [(r.tests_covered, r.tests_passed) for r in records] == [(True, True), (True, False), (True, True)]
    assert len(runs) == 2 + 1 + 2  # two baseline files, the mutant, two distinct completions
    assert repo_tests.describe(suites)["pkg"]["runnable"] == ["tests/test_use.py"]
    by = summarise(records, ["none", "all"])
    assert (by["none"]["tests_passed"], by["none"]["tests_covered"], by["all"]["pass_at_1"]) == (1, 1, 0.0)
    assert "100.0 (1/1)" in table(by)


def test_implementation_only_leaves_test_code_out(tmp_path: Path) -> None:
    from cgstudio.evaluation.repo_tasks import select_tasks

    root = _package(tmp_path)
    (root / "pkg" / "limits.py").write_text("UPPER_LIMIT = 3\n")
    use = "import pkg.limits as lim\n\n\ndef bound(x):\n    return min(x, lim.UPPER_LIMIT)\n"
    (root / "pkg" / "bound.py").write_text(use)
    (root / "tests" / "test_more.py").write_text("import pkg.limits as lim\n\n\nx = lim.UPPER_LIMIT + 1\n")
    every = select_tasks([("pkg", root)], 0, None)
    impl = select_tasks([("pkg", root)], 0, None, implementation_only=True)
    assert any(repo_tests.is_test_file(t.path) for t in every)
    assert impl and not any(repo_tests.is_test_file(t.path) for t in impl)
    assert set(impl) < set(every)


def test_the_tested_corpus_set_is_pinned_and_selectable() -> None:
    from cgstudio.core.errors import UsageError
    from cgstudio.evaluation import repo_corpus

    assert repo_corpus.select((), "tested") == repo_corpus.TESTED
    assert repo_corpus.select((), "crossfile") == repo_corpus.CORPUS
    assert [s.name for s in repo_corpus.select(("parso", "tinydb"))] == ["parso", "tinydb"]
    for s in repo_corpus.TESTED:
        assert len(s.sha256) == 64 and s.url.endswith(".tar.gz") and s.uploaded >= "2025"
    with pytest.raises(UsageError, match="sqlparse"):
        repo_corpus.select(("nope",))
