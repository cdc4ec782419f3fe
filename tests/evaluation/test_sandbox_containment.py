"""The sandbox cannot be fooled into a pass, and contains the whole run, not just each process.

Each test runs under every sandbox mode that works here (as root: "root-drop", "userns" and the
unisolated "none"); each attack below succeeded before the harness token, the per-run cgroup and
the pids limit.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from cgstudio.evaluation import cgroups, sandbox
from cgstudio.evaluation.sandbox import IsolationMode, Limits, run_program

MODES: list[IsolationMode] = [
    *(m for m in sandbox.candidate_modes() if sandbox.check_isolation(m) is None),
    "none",
]
any_mode = pytest.mark.parametrize("mode", MODES)
QUICK = Limits(timeout_s=5.0)

EARLY_EXITS = {
    "exit": "exit()",
    "quit": "quit()",
    "sys.exit": "import sys\nsys.exit(0)",
    "os._exit": "import os\nos._exit(0)",
    "SystemExit": "raise SystemExit",
    "exec-true": "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'pass'])",
    "fork-parent-exits": "import os, time\nif os.fork():\n    os._exit(0)\ntime.sleep(30)",
    "close-stdin-and-print": "import sys\nprint(sys.stdin.read(), file=sys.stderr)\nexit()",
}


@any_mode
@pytest.mark.parametrize("how", list(EARLY_EXITS))
def test_an_early_exit_is_not_a_pass(mode: IsolationMode, how: str) -> None:
    program = EARLY_EXITS[how] + "\nraise AssertionError('the checks would fail')\n"
    outcome = run_program(program, QUICK, mode)
    assert outcome.status == "failed", outcome
    assert "not a pass" in outcome.stderr_tail


@any_mode
def test_the_same_program_without_the_exit_passes(mode: IsolationMode) -> None:
    # The control for the test above: a program that reaches its end passes, whatever it prints.
    program = "import sys\nprint('hello', file=sys.stderr)\nprint('out')\nassert 1 + 1 == 2\n"
    outcome = run_program(program, QUICK, mode)
    assert (outcome.status, outcome.returncode) == ("passed", 0), outcome.stderr_tail


@any_mode
def test_the_token_is_out_of_the_programs_reach(mode: IsolationMode) -> None:
    # Not on stdin (already read and replaced by /dev/null), argv, the environment or the globals.
    program = (
        "import os, sys\n"
        "assert os.read(0, 100) == b'', 'stdin still holds the token'\n"
        "assert sys.argv == ['program.py'], sys.argv\n"
        "assert all(len(v) < 32 or not v.isalnum() for v in os.environ.values()), os.environ\n"
        "assert set(globals()) <= {'__name__', '__doc__', '__package__', '__loader__', '__spec__',\n"
        "    '__file__', '__builtins__', 'os', 'sys'}, sorted(globals())\n"
        "assert __name__ == '__main__' and sys.modules['__main__'].__dict__ is globals()\n"
    )
    outcome = run_program(program, QUICK, mode)
    assert outcome.status == "passed", outcome.stderr_tail


def test_tracebacks_show_the_program_not_the_harness() -> None:
    outcome = run_program("def f():\n    raise ValueError('boom')\n\nf()\n", QUICK)
    assert outcome.status == "failed"
    assert 'File "program.py", line 4' in outcome.stderr_tail and "ValueError: boom" in outcome.stderr_tail
    assert "<string>" not in outcome.stderr_tail


# Each child allocates and touches 150 MB, reports, then holds it for 2 s; the parent counts the
# children that survived to exit 0. All survivors held their memory at the same time.
_HOGS = """
import os, sys, time
survivors = 0
pids = []
for _ in range(4):
    try:
        pid = os.fork()
    except OSError as exc:
        print("fork failed:", exc, file=sys.stderr)
        continue
    if pid == 0:
        try:
            block = b"\\x01" * (150 << 20)
        except MemoryError:
            os._exit(3)
        time.sleep(2)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    _, status = os.waitpid(pid, 0)
    survivors += os.waitstatus_to_exitcode(status) == 0
print("survivors", survivors, file=sys.stderr)
"""


@any_mode
def test_memory_is_limited_for_the_whole_run(mode: IsolationMode) -> None:
    # 4 x 150 MB, each under the 256 MiB limit: without a total, all four survive (600 MB).
    outcome = run_program(_HOGS, Limits(timeout_s=20.0, memory_bytes=256 << 20), mode)
    assert outcome.memory in ("cgroup-v2", "cgroup-v1", "rlimit")
    if outcome.status == "passed":
        survivors = outcome.stderr_tail.rsplit("survivors", 1)[-1].split()[0]
        assert survivors in ("0", "1"), outcome.stderr_tail
    else:  # the OOM killer may pick the parent itself
        assert outcome.status == "error" and "memory budget" in outcome.stderr_tail, outcome


@any_mode
def test_memory_total_without_a_cgroup(mode: IsolationMode, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fallback: RLIMIT_NPROC x RLIMIT_AS bound the total (4 processes of 64 MiB here).
    monkeypatch.setattr(cgroups, "_support", cgroups.Support("none", reason="test"))
    outcome = run_program(_HOGS, Limits(timeout_s=20.0, memory_bytes=256 << 20), mode)
    assert outcome.memory == "rlimit"
    assert outcome.status == "passed", outcome.stderr_tail
    assert "survivors 0" in outcome.stderr_tail, outcome.stderr_tail


_FORKS = """
import os, sys, time
children = 0
try:
    for _ in range(300):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        children += 1
except BlockingIOError:
    print('capped at', children, file=sys.stderr)
else:
    sys.exit('forked 300 processes')
"""


@pytest.mark.parametrize(
    "mode",
    [
        m
        for m in MODES
        if os.geteuid() != 0
        or m == "root-drop"
        or cgroups.support().pids
        or cgroups.support().kind == "cgroup-v2"
    ],
)
def test_forks_are_capped_in_every_mode(mode: IsolationMode) -> None:
    # As root, "userns" and "none" run as uid 0, which RLIMIT_NPROC does not bind: the pids cgroup does.
    outcome = run_program(_FORKS, Limits(timeout_s=20.0, processes=32), mode)
    assert outcome.status == "passed", outcome.stderr_tail
    assert "capped at" in outcome.stderr_tail


def test_weaker_modes_say_so(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    assert sandbox.containment("none")["warnings"], "the unisolated mode must warn"
    if os.geteuid() == 0:
        assert sandbox.containment("userns")["warnings"]
        assert "nobody" in sandbox.containment("root-drop")["user"]
    none = sandbox.containment("none")
    assert none["filesystem"] == "host file system" and none["network"] == "host network"
    monkeypatch.setattr(cgroups, "_support", cgroups.Support("none", reason="test"))
    assert any("cgroup" in w for w in sandbox.containment("root-drop")["warnings"])
    # Detection that finds no namespaces logs the weakness loudly, once.
    monkeypatch.setattr(sandbox, "_detected_mode", None)
    monkeypatch.setattr(sandbox, "candidate_modes", list)
    with caplog.at_level(logging.WARNING, logger="cgstudio.evaluation.sandbox"):
        assert sandbox.isolation_mode() == "none"
    text = caplog.text
    assert "SANDBOX NOT ISOLATED" in text and "SANDBOX WEAKER" in text and "cgroup" in text


def test_root_drop_has_no_warnings_with_a_cgroup() -> None:
    if os.geteuid() != 0 or cgroups.support().kind == "none":
        pytest.skip("needs root and a cgroup")
    assert sandbox.containment("root-drop")["warnings"] == []


_SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(
    os.geteuid() != 0 or not _SYSTEM_PYTHON.exists(), reason="needs root and /usr/bin/python3"
)
def test_unisolated_mode_as_root_drops_to_nobody(tmp_path: Path) -> None:
    # The fallback used to run programs as root (reading /etc/shadow). With an interpreter that
    # nobody can reach (here the system's; the sandbox needs only the stdlib), it runs as nobody.
    src = Path(sandbox.__file__).resolve().parents[2]
    program = (
        "import os\n"
        "assert os.getuid() == 65534, os.getuid()\n"
        "try:\n"
        "    open('/etc/shadow').read()\n"
        "except PermissionError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('read /etc/shadow')\n"
    )
    driver = (
        f"import sys; sys.path.insert(0, {str(src)!r})\n"
        "from cgstudio.evaluation.sandbox import Limits, containment, run_program\n"
        f"o = run_program({program!r}, Limits(timeout_s=10), 'none')\n"
        "print(o.status, containment('none')['user'], o.stderr_tail)\n"
    )
    r = subprocess.run(
        [str(_SYSTEM_PYTHON), "-I", "-c", driver], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert r.stdout.startswith("passed nobody"), r.stdout + r.stderr
