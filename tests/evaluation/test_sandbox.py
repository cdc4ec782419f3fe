"""The sandbox contains hostile programs: each attack below succeeds without it.

Attack tests run under every namespace mode that works here (as root: "root-drop" and "userns");
basic pass/fail/timeout tests also run in the unisolated "none" fallback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cgstudio.evaluation import rootfs, sandbox
from cgstudio.evaluation.sandbox import IsolationMode, Limits, Outcome, run_many, run_program

ISOLATED_MODES = [mode for mode in sandbox.candidate_modes() if sandbox.check_isolation(mode) is None]
ALL_MODES: list[IsolationMode] = [*ISOLATED_MODES, "none"]
QUICK = Limits(timeout_s=2.0)

isolated = pytest.mark.parametrize(
    "mode", ISOLATED_MODES or [pytest.param("none", marks=pytest.mark.skip(reason="no namespace isolation"))]
)
any_mode = pytest.mark.parametrize("mode", ALL_MODES)


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("unshare") is None, reason="Linux")
def test_isolation_is_used_wherever_namespaces_work() -> None:
    # Guards the probe: if the kernel lets us make namespaces, the sandbox must not fall back.
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount", "--net", "true"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"namespaces unavailable here: {probe.stderr.decode().strip()}")
    assert sandbox.isolation_mode() != "none"
    assert run_program("pass").isolated


@any_mode
def test_passing_and_failing_programs(mode: IsolationMode) -> None:
    ok = run_program("def f(x):\n    return x + 1\n\nassert f(1) == 2\n", QUICK, mode)
    assert (ok.status, ok.returncode, ok.isolation) == ("passed", 0, mode)
    assert ok.isolated == (mode != "none")
    bad = run_program("def f(x):\n    return x\n\nassert f(1) == 2, 'wrong'\n", QUICK, mode)
    assert bad.status == "failed"
    assert "AssertionError: wrong" in bad.stderr_tail
    assert 0 < bad.duration_s < QUICK.timeout_s


@any_mode
def test_infinite_loop_times_out(mode: IsolationMode) -> None:
    started = time.monotonic()
    outcome = run_program("while True:\n    pass\n", Limits(timeout_s=1.5), mode)
    assert outcome.status == "timed_out"
    assert 1.5 <= outcome.duration_s < 1.5 + 3 and time.monotonic() - started < 1.5 + 5


@any_mode
def test_cpu_limit_counts_as_timeout(mode: IsolationMode) -> None:
    outcome = run_program("while True:\n    pass\n", Limits(timeout_s=20.0, cpu_s=1), mode)
    assert outcome.status == "timed_out"
    assert outcome.duration_s < 10  # the CPU rlimit, not the 20 s wall clock, stopped it


@any_mode
def test_environment_is_scrubbed_and_workdir_is_private(
    mode: IsolationMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CGSTUDIO_SECRET_TOKEN", "hunter2")
    program = (
        "import os\n"
        "assert 'CGSTUDIO_SECRET_TOKEN' not in os.environ, 'secret leaked'\n"
        "assert os.listdir('.') == ['program.py'], os.listdir('.')\n"
        "open('scratch.txt', 'w').write('ok')\n"  # the working directory is writable
        "assert open('scratch.txt').read() == 'ok'\n"
    )
    outcome = run_program(program, QUICK, mode)
    assert outcome.status == "passed", outcome.stderr_tail


@isolated
def test_cannot_write_outside_its_directory(mode: IsolationMode, tmp_path: Path, cache: pytest.Cache) -> None:
    # World-writable targets, so only the sandbox (not Unix permissions) stands in the way: one under
    # /tmp like the sandbox's own host directory, one in the repository's .pytest_cache; and the
    # interpreter's prefix, which is inside the sandbox but read-only.
    targets = [tmp_path / "pwned.txt", cache.mkdir("sandbox-write-test") / f"pwned-{uuid.uuid4().hex}.txt"]
    for target in targets:
        target.parent.chmod(0o777)
    targets.append(Path(sys.prefix) / f"pwned-{uuid.uuid4().hex}.txt")
    program = (
        "import sys\n"
        "errors = []\n"
        f"for path in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('pwned')\n"
        "    except OSError as exc:\n"
        "        errors.append(exc)\n"
        "print(errors, file=sys.stderr)\n"
        "assert len(errors) == 3, 'wrote outside the sandbox'\n"
    )
    outcome = run_program(program, QUICK, mode)
    try:
        assert not any(t.exists() for t in targets)
        assert outcome.status == "passed", outcome.stderr_tail
        # The host directories are not there at all; the interpreter is, read-only.
        assert outcome.stderr_tail.count("No such file or directory") == 2, outcome.stderr_tail
        assert "Read-only file system" in outcome.stderr_tail or "Permission denied" in outcome.stderr_tail
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


_PROBE_HOST = """
import os, socket, sys
leaks = []
for path in {files!r}:
    try:
        leaks.append((path, open(path).read()[:40]))
    except OSError as exc:
        print("read", path, type(exc).__name__, file=sys.stderr)
for path in {sockets!r}:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect(path)
        s.sendall(b"pwned")
        leaks.append((path, "connected"))
    except OSError as exc:
        print("connect", path, type(exc).__name__, file=sys.stderr)
for path in {dirs!r}:
    try:
        leaks.append((path, sorted(os.listdir(path))[:5]))
    except OSError as exc:
        print("list", path, type(exc).__name__, file=sys.stderr)
extra = sorted(set(os.listdir("/")) - set({top!r}))
assert not leaks and not extra, (leaks, extra)
"""


def _sandbox_top_level() -> set[str]:
    """What / may hold: /dev, /tmp and the first component of each interpreter path."""
    plan = rootfs.root_plan()
    paths = [*plan["binds"], *(path for path, _ in plan["symlinks"])]
    return {"dev", "tmp", *(p.strip("/").split("/")[0] for p in paths)}


@isolated
def test_host_files_and_unix_sockets_are_out_of_reach(
    mode: IsolationMode, tmp_path: Path, cache: pytest.Cache
) -> None:
    # Readable by everyone and a socket anyone may connect to: only the sandbox's file system stands
    # in the way. One set outside /tmp (the repository's .pytest_cache), one under /tmp.
    places = [cache.mkdir(f"sandbox-canary-{uuid.uuid4().hex[:8]}"), tmp_path]
    files, sockets, listeners = [], [], []
    for place in places:
        place.chmod(0o755)
        canary = place / ".env"
        canary.write_text("CGSTUDIO_CANARY=leaked\n")
        canary.chmod(0o644)
        files.append(str(canary))
        path = place / "s.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(1)
        listener.settimeout(0.3)
        path.chmod(0o777)
        sockets.append(str(path))
        listeners.append(listener)
    files += ["/etc/shadow", "/etc/passwd", "/etc/hostname", str(Path(__file__).resolve())]
    dirs = ["/etc", "/home", "/proc", str(Path(__file__).resolve().parent)]
    try:
        program = _PROBE_HOST.format(files=files, sockets=sockets, dirs=dirs, top=_sandbox_top_level())
        outcome = run_program(program, QUICK, mode)
        assert outcome.status == "passed", outcome.stderr_tail
        assert outcome.stderr_tail.count("FileNotFoundError") == len(files) + len(sockets) + len(dirs)
        for listener in listeners:
            with pytest.raises(TimeoutError):
                listener.accept()
    finally:
        for listener in listeners:
            listener.close()
        shutil.rmtree(places[0], ignore_errors=True)


def test_host_probe_can_leak_without_a_sandbox(tmp_path: Path) -> None:
    # Shows the probe above can fail: run directly, it reads the canary and connects.
    canary = tmp_path / ".env"
    canary.write_text("CGSTUDIO_CANARY=leaked\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(tmp_path / "s.sock"))
        listener.listen(1)
        program = _PROBE_HOST.format(files=[str(canary)], sockets=[str(tmp_path / "s.sock")], dirs=[], top=[])
        r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "CGSTUDIO_CANARY" in r.stderr and "connected" in r.stderr


@isolated
def test_interpreter_under_tmp_runs_in_the_sandbox(mode: IsolationMode, tmp_path: Path) -> None:
    # A venv under /tmp used to vanish under the sandbox's private /tmp. The minimal root binds the
    # interpreter at its own path, wherever it lives.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    src = Path(sandbox.__file__).resolve().parents[2]
    driver = (
        f"import sys; sys.path.insert(0, {str(src)!r})\n"
        "from cgstudio.evaluation.sandbox import Limits, run_program\n"
        "o = run_program('import sys; assert sys.prefix.startswith(\"/tmp\"), sys.prefix', "
        f"Limits(timeout_s=10), {mode!r})\n"
        "print(o.status, o.stderr_tail)\n"
    )
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", driver], capture_output=True, text=True, timeout=120
    )
    assert r.stdout.startswith("passed"), r.stdout + r.stderr


@isolated
def test_cannot_signal_other_processes(mode: IsolationMode) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        program = f"import os, signal\nos.kill({sleeper.pid}, signal.SIGKILL)\n"
        outcome = run_program(program, QUICK, mode)
        assert outcome.status == "failed"
        assert "ProcessLookupError" in outcome.stderr_tail or "PermissionError" in outcome.stderr_tail
        time.sleep(0.2)
        assert sleeper.poll() is None, "the sandboxed program killed a process outside the sandbox"
    finally:
        sleeper.kill()
        sleeper.wait()


@isolated
def test_cannot_open_network_connections(mode: IsolationMode) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'x')\n"
        outcome = run_program(program, QUICK, mode)
        assert outcome.status == "failed"
        assert "Network is unreachable" in outcome.stderr_tail or "Connection refused" in outcome.stderr_tail
        with pytest.raises(TimeoutError):
            listener.accept()


@any_mode
def test_memory_exhaustion_is_contained(mode: IsolationMode) -> None:
    outcome = run_program("block = bytearray(8 << 30)\nprint(len(block))\n", QUICK, mode)
    assert outcome.status in ("failed", "error")
    assert "MemoryError" in outcome.stderr_tail
    # This process, and the sandbox, carry on.
    assert bytearray(1 << 20) and run_program("pass", QUICK, mode).passed


@any_mode
def test_file_size_limit(mode: IsolationMode) -> None:
    program = "open('big.bin', 'wb').write(b'0' * (32 << 20))\n"
    outcome = run_program(program, Limits(timeout_s=5.0, file_bytes=1 << 20), mode)
    # Python ignores SIGXFSZ, so the write fails with EFBIG instead of the process being killed.
    assert outcome.status == "failed"
    assert "File too large" in outcome.stderr_tail


_DAEMON = """
import os, signal, sys, time
if os.fork() == 0:
    os.setsid()  # leave the process group the sandbox kills
    os.execv(sys.executable, [sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)", "{marker}"])
time.sleep(0.5)  # let the child start
{tail}
"""


@isolated
@pytest.mark.parametrize("parent", ["loops", "exits"])
def test_no_process_outlives_the_program(mode: IsolationMode, parent: str) -> None:
    marker = f"cgstudio-sandbox-test-{uuid.uuid4().hex}"
    tail = "while True:\n    pass\n" if parent == "loops" else "print('bye')\n"
    outcome = run_program(_DAEMON.format(marker=marker, tail=tail), QUICK, mode)
    survivors = _processes_with(marker)
    for pid in survivors:  # clean up before failing
        os.kill(pid, 9)
    assert survivors == []
    assert outcome.status == ("timed_out" if parent == "loops" else "passed"), outcome.stderr_tail


def test_daemon_marker_is_visible_when_alive() -> None:
    # Shows _processes_with() can see such a daemon at all, so the test above can fail.
    marker = f"cgstudio-sandbox-test-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", marker])
    try:
        time.sleep(0.2)
        assert _processes_with(marker) == [proc.pid]
    finally:
        proc.kill()
        proc.wait()


def test_run_many_keeps_order_and_streams() -> None:
    produced: list[float] = []
    finished: dict[int, float] = {}
    lock = threading.Lock()

    def programs() -> Iterator[str]:
        for i in range(6):
            produced.append(time.monotonic())
            yield "import time\ntime.sleep(0.3)\n" + ("assert False\n" if i % 2 else "")
            time.sleep(0.2)  # a slow "model"

    def record(index: int, outcome: Outcome) -> None:
        with lock:
            finished[index] = time.monotonic()

    outcomes = run_many(programs(), workers=2, limits=QUICK, on_result=record)
    assert [o.status for o in outcomes] == ["passed", "failed"] * 3
    assert sorted(finished) == list(range(6))
    # The first program finished before the generator produced the last one.
    assert finished[0] < produced[-1]


def test_run_many_rejects_zero_workers() -> None:
    with pytest.raises(ValueError):
        run_many(["pass"], workers=0)


@pytest.mark.parametrize(
    "mode",
    [m for m in ALL_MODES if m == "root-drop" or os.geteuid() != 0]
    or [
        pytest.param("none", marks=pytest.mark.skip(reason="the kernel exempts host uid 0 from RLIMIT_NPROC"))
    ],
)
def test_fork_bomb_is_capped(mode: IsolationMode) -> None:
    program = (
        "import os, sys, time\n"
        "children = 0\n"
        "try:\n"
        "    for _ in range(500):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "except BlockingIOError:\n"
        "    print('capped at', children, file=sys.stderr)\n"
        "else:\n"
        "    sys.exit('forked 500 processes')\n"
    )
    outcome = run_program(program, Limits(timeout_s=10.0, processes=32), mode)
    assert outcome.status == "passed", outcome.stderr_tail
    assert "capped at" in outcome.stderr_tail


def test_signal_death_is_an_error() -> None:
    outcome = run_program("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", QUICK)
    assert (outcome.status, outcome.signal_number, outcome.returncode) == ("error", 11, None)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Limits(timeout_s=0)
    with pytest.raises(ValueError):
        Limits(memory_bytes=-1)
