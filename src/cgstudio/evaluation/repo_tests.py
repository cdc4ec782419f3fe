"""pass@1 of ``cgstudio eval repo``: the package's own tests, run on the file with the completion.

A completion passes when the package's tests pass with the masked line replaced by the
completion's first line (leading whitespace dropped: the cursor sits after the indentation, and
exact match ignores it too). The tests are untrusted code like the completion, so every run goes
through the eval sandbox (``sandbox.run_program``): the program writes the package's files
into the sandbox's private working folder and runs pytest there, in-process, with plugin
autoloading off (the venv's plugins are not the package's) and the package's ``addopts`` cleared
(they name plugins such as coverage that may not be installed).

Which tests count (``PackageTests``):

* **runnable:** each test file of the package is first run alone on the released code; only the
  files that pass there are used (a file that needs a missing dependency, the network or a
  plugin does not). A package with none has no pass@1 (``None``).
* **covered:** a task counts for pass@1 only when the tests notice the masked line going wrong:
  the line with its cross-file identifier renamed to a name that exists nowhere must fail them.
  On a task the tests do not cover, any completion would pass, so it is left out and counted.
  A line of test code (a test module, a ``conftest.py`` or any file in a tests folder) is never
  covered: there the tests judge
  themselves, and any statement that does not fail would pass.

Outcomes are cached per (package, file, text), so identical completions run once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cgstudio.evaluation.repo_run import RepoRecord
from cgstudio.evaluation.repo_scoring import first_line
from cgstudio.evaluation.repo_tasks import TEST_FILE, RepoTask, is_test_file
from cgstudio.evaluation.sandbox import Limits, Outcome, run_program

SKIP_PARTS = frozenset({".git", "__pycache__", ".tox", ".venv", "build", "dist", "docs", "node_modules"})
MAX_FILE_BYTES = 256 * 1024
MAX_TREE_BYTES = 8 << 20
TEST_LIMITS = Limits(timeout_s=120.0)
MUTANT_NAME = "_cgstudio_no_such_name_"

_PROGRAM = """\
import base64, json, os, sys
files = json.loads({files!r})
root = os.path.abspath("pkg")
for rel, data in files.items():
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(base64.b64decode(data))
os.chdir(root)
sys.path[:0] = [root, os.path.join(root, "src")]
os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
sys.stdout = sys.stderr  # the sandbox keeps stderr's tail: pytest's report says why a run failed
import pytest
code = pytest.main({args!r} + {tests!r})
if code != 0:
    raise SystemExit("pytest exit status %s" % int(code))
"""
_PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--rootdir", "."]


def tree_files(root: Path) -> dict[str, bytes]:
    """The package's files (regular files, not links; no docs, caches or build output), as
    {relative POSIX path: bytes}: data files such as compiled locales are needed by tests too."""
    files: dict[str, bytes] = {}
    total = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_symlink() or not path.is_file():
            continue
        if any(part in SKIP_PARTS or part.endswith(".egg-info") for part in rel.parts):
            continue
        size = path.stat().st_size
        if size > MAX_FILE_BYTES or total + size > MAX_TREE_BYTES:
            continue
        try:
            files[rel.as_posix()] = path.read_bytes()
        except OSError:
            continue
        total += size
    return files


def test_files(files: dict[str, bytes]) -> list[str]:
    """The test modules pytest would collect (``test_*.py``, ``*_test.py``)."""
    return [p for p in files if TEST_FILE.fullmatch(p.rsplit("/", 1)[-1])]


def _why(outcome: Outcome) -> str:
    """A failed baseline run in a line: pytest's last error line (``E   ...``), else its last line."""
    lines = [x.strip() for x in outcome.stderr_tail.splitlines() if x.strip()]
    errors = [x[1:].strip() for x in lines if x.startswith("E ")]
    return f"{outcome.status}: {(errors or lines or [''])[-1]}"[:200]


def program(files: dict[str, bytes], tests: Sequence[str]) -> str:
    """The sandbox program that writes ``files`` and runs pytest on ``tests``."""
    encoded = {rel: base64.b64encode(data).decode("ascii") for rel, data in files.items()}
    return _PROGRAM.format(files=json.dumps(encoded), args=_PYTEST_ARGS, tests=list(tests))


def completed_text(task: RepoTask, completion: str) -> str:
    """File A with the masked line replaced by the completion's first line."""
    return task.prefix + first_line(completion).lstrip() + task.suffix


def mutant_text(task: RepoTask) -> str:
    """File A with the task's identifier renamed, in the masked line only, to a name that exists
    nowhere: tests that cover the line fail on it."""
    line = re.sub(rf"\b{re.escape(task.identifier)}\b", MUTANT_NAME, task.answer)
    return task.prefix + line + task.suffix


Runner = Callable[[str, Limits], Outcome]


def _sandboxed(source: str, limits: Limits) -> Outcome:
    return run_program(source, limits)


@dataclass
class PackageTests:
    """One package's runnable tests, and the outcomes of runs on changed versions of it."""

    name: str
    root: Path
    runner: Runner = _sandboxed
    files: dict[str, bytes] = field(init=False)
    runnable: list[str] | None = field(init=False, default=None)
    skipped: dict[str, str] = field(init=False, default_factory=dict)  # test file -> why
    _cache: dict[str, bool] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.files = tree_files(self.root)

    def baseline(self) -> list[str]:
        """The test files that pass alone on the released code (run once)."""
        if self.runnable is None:
            self.runnable = []
            for test in test_files(self.files):
                outcome = self.runner(program(self.files, [test]), TEST_LIMITS)
                if outcome.passed:
                    self.runnable.append(test)
                else:
                    self.skipped[test] = _why(outcome)
        return self.runnable

    def passes(self, path: str, text: str) -> bool | None:
        """Whether the runnable tests pass with file ``path`` holding ``text``; None without any."""
        tests = self.baseline()
        if not tests or path not in self.files:
            return None
        key = hashlib.sha256(f"{path}\0{text}".encode()).hexdigest()
        if key not in self._cache:
            outcome = self.runner(program({**self.files, path: text.encode("utf-8")}, tests), TEST_LIMITS)
            self._cache[key] = outcome.passed
        return self._cache[key]


@dataclass(frozen=True)
class TaskTests:
    """A task's test verdicts: whether the tests cover its line, and pass@1 per completion."""

    covered: bool | None  # None: the package has no runnable tests
    results: dict[str, bool | None]  # completion -> passed (None where not covered)


def score_task(tests: PackageTests, task: RepoTask, completions: Sequence[str]) -> TaskTests:
    """Run the mutant, then each distinct completion, unless the tests do not cover the line."""
    if is_test_file(task.path):
        return TaskTests(False if tests.baseline() else None, {c: None for c in completions})
    covered_run = tests.passes(task.path, mutant_text(task))
    if covered_run is None:
        return TaskTests(None, {c: None for c in completions})
    if covered_run:  # the mutant passed: the tests never look at this line
        return TaskTests(False, {c: None for c in completions})
    return TaskTests(True, {c: tests.passes(task.path, completed_text(task, c)) for c in completions})


def score_records(
    records: Sequence[RepoRecord],
    tasks: Sequence[RepoTask],
    packages: Sequence[tuple[str, Path]],
    *,
    runner: Runner = _sandboxed,
    on_task: Callable[[RepoTask, TaskTests], None] | None = None,
) -> dict[str, PackageTests]:
    """Set ``tests_covered`` and ``tests_passed`` on ``records`` (in place), task by task; the
    tests of each package, with what ran and what was skipped, are returned."""
    suites = {name: PackageTests(name, root, runner) for name, root in packages}
    by_task: dict[str, list[RepoRecord]] = {}
    for r in records:
        by_task.setdefault(r.task_id, []).append(r)
    for task in tasks:
        mine = by_task.get(task.task_id)
        suite = suites.get(task.package)
        if not mine or suite is None:
            continue
        verdict = score_task(suite, task, list(dict.fromkeys(r.completion for r in mine)))
        for r in mine:
            r.tests_covered, r.tests_passed = verdict.covered, verdict.results[r.completion]
        if on_task is not None:
            on_task(task, verdict)
    return suites


def describe(suites: dict[str, PackageTests]) -> dict[str, dict[str, object]]:
    """Per package: the test files used and the ones left out, with why (for the report)."""
    return {
        name: {"runnable": s.runnable or [], "skipped": s.skipped}
        for name, s in suites.items()
        if s.runnable is not None
    }
