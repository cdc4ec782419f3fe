"""Run untrusted Python programs (model completions plus their tests) in a sandbox.

Nothing is executed in-process. Each program is written to a fresh temporary directory and run by
``sys.executable -I`` (isolated mode: no user site, no ``PYTHON*`` variables, script directory not
on ``sys.path``) in its own session, with a scrubbed environment, stdin and stdout on /dev/null,
stderr captured to a file, and these resource limits (``Limits``; defaults):

* wall clock ``timeout_s`` = 10 s, sized for a slow 2-core machine running two programs at once:
  HumanEval canonical solutions take 0.07 s (median) to 0.22 s (max) there, sandbox start-up
  included, so a model's slower but correct solution still fits; on expiry the whole process
  group and, when isolated, the whole PID namespace is SIGKILLed;
* ``RLIMIT_CPU`` = ``cpu_s`` (default ``ceil(timeout_s) + 1`` s), ``RLIMIT_AS`` = 1 GiB address
  space, ``RLIMIT_FSIZE`` = 16 MiB per file, no core dumps, and ``RLIMIT_NPROC`` = 64
  processes/threads. The kernel counts RLIMIT_NPROC per user (here: all programs running as
  ``nobody`` together) and ignores it for host uid 0, i.e. in "userns"/"none" mode under root.

On Linux the program is also isolated with namespaces made by util-linux ``unshare`` (new PID,
mount, network, IPC and UTS namespaces; a helper, ``_sandbox_init.py``, runs as PID 1 inside):

* every mount is remounted read-only and ``/tmp`` is replaced by a private 64 MiB tmpfs holding the
  working directory ``/tmp/work`` (just ``program.py`` at the start), the only writable place
  (host /tmp, other sandboxes and the caller's temporary files are not even visible);
* the network namespace has only a down loopback device: no connection can be made;
* the PID namespace hides every other process, so none can be signalled; when the helper exits or
  is killed the kernel kills everything left inside, ``setsid``/double-fork escapes included;
* ``"root-drop"`` mode (when we are root): the program runs as ``nobody`` (uid/gid 65534) with
  no capabilities and ``no_new_privs``; if the interpreter lives in a directory ``nobody`` cannot
  enter (e.g. /root/.pyenv), only the interpreter's directories are bind-mounted back, read-only;
* ``"userns"`` mode (not root, or root-drop unavailable): a user namespace maps us to root inside
  it, which is what allows the other namespaces; the program keeps that uid but loses every
  capability (empty bounding set, ``no_new_privs``), so it cannot undo the read-only mounts.
  When we are root on the host, "root inside" is host root without capabilities: still read-only
  and isolated, but weaker than root-drop, hence root-drop is preferred.

If no namespace mode works (not Linux, no ``unshare``, or a container that forbids namespaces) the
program runs with only the limits above in a temporary directory: that is logged as a warning and
reported as ``Outcome.isolation == "none"`` (``Outcome.isolated`` is False). In that mode a
program that calls ``setsid`` can outlive its timeout, and nothing stops writes or connections.

``isolation_mode()`` probes the modes once per process (about 0.1 s) and caches the answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

log = logging.getLogger(__name__)

Status = Literal["passed", "failed", "timed_out", "error"]
IsolationMode = Literal["root-drop", "userns", "none"]

DEFAULT_TIMEOUT_S = 10.0
SANDBOX_UID = SANDBOX_GID = 65534  # nobody/nogroup
STDERR_TAIL_CHARS = 2000
_INIT_SCRIPT = Path(__file__).with_name("_sandbox_init.py")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GROUP_EXIT_WAIT_S = 5.0


@dataclass(frozen=True)
class Limits:
    """Resource limits for one program. Units: seconds and bytes."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_bytes: int = 1 << 30
    cpu_s: int | None = None  # None: ceil(timeout_s) + 1
    processes: int = 64
    file_bytes: int = 16 << 20
    tmpfs_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        sizes = (self.memory_bytes, self.processes, self.file_bytes, self.tmpfs_bytes)
        if self.timeout_s <= 0 or min(sizes) <= 0 or (self.cpu_s is not None and self.cpu_s <= 0):
            raise ValueError(f"sandbox limits must be positive: {self}")

    def cpu_limit_s(self) -> int:
        return self.cpu_s if self.cpu_s is not None else math.ceil(self.timeout_s) + 1


@dataclass(frozen=True)
class Outcome:
    """What happened to one program.

    ``status``: ``passed`` (exit status 0), ``failed`` (non-zero exit, e.g. an AssertionError or any
    other exception), ``timed_out`` (wall clock or CPU limit), ``error`` (killed by another signal,
    e.g. SIGSEGV or the kernel's OOM killer, or the sandbox itself failed to start). ``duration_s``
    is wall-clock seconds including sandbox start-up (about 0.06 s for an empty program).
    ``stderr_tail`` is the last ~2000 characters of the program's stderr (plus any sandbox setup
    error).
    """

    status: Status
    duration_s: float
    stderr_tail: str
    isolation: IsolationMode
    returncode: int | None = None  # the program's exit status; None if it did not exit by itself
    signal_number: int | None = None  # the signal that ended it, if any (not set on timeouts)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def isolated(self) -> bool:
        """False when the program ran without namespaces (see the module docstring)."""
        return self.isolation != "none"


# ---------------------------------------------------------------------------------------------------
# Isolation mode detection


_mode_lock = threading.Lock()
_detect_lock = threading.Lock()
_detected_mode: IsolationMode | None = None
_probe_results: dict[IsolationMode, str | None] = {}


def _unshare() -> str | None:
    return shutil.which("unshare", path=_SYSTEM_PATH)


def candidate_modes() -> list[IsolationMode]:
    """Namespace modes worth trying here, strongest first (empty off Linux or without unshare)."""
    if not sys.platform.startswith("linux") or _unshare() is None:
        return []
    return ["root-drop", "userns"] if os.geteuid() == 0 else ["userns"]


def check_isolation(mode: IsolationMode) -> str | None:
    """Run a trivial program under ``mode``: None if it works, else why not. Cached per mode."""
    with _mode_lock:
        if mode not in _probe_results:
            outcome = _run(_PROBE_PROGRAM, Limits(timeout_s=30.0), mode)
            reason = None if outcome.passed else f"{outcome.status}: {outcome.stderr_tail.strip()[-300:]}"
            _probe_results[mode] = reason
        return _probe_results[mode]


def isolation_mode() -> IsolationMode:
    """The strongest isolation that works here, probed once per process (about 0.1 s) and cached.

    Logs a warning when only ``"none"`` is available.
    """
    global _detected_mode
    with _detect_lock:
        if _detected_mode is None:
            _detected_mode = _detect()
        return _detected_mode


def _detect() -> IsolationMode:
    failures = []
    for mode in candidate_modes():
        reason = check_isolation(mode)
        if reason is None:
            log.debug("sandbox isolation: %s", mode)
            return mode
        failures.append(f"{mode}: {reason}")
    log.warning(
        "SANDBOX NOT ISOLATED: untrusted programs will run with resource limits only; they can "
        "write files, open network connections and signal this user's processes (%s)",
        "; ".join(failures) or f"no util-linux 'unshare' on {sys.platform}",
    )
    return "none"


_PROBE_PROGRAM = "import sys\nassert sys.flags.isolated\n"


# ---------------------------------------------------------------------------------------------------
# Running programs


def run_program(
    source: str,
    limits: Limits | None = None,
    isolation: IsolationMode | Literal["auto"] = "auto",
) -> Outcome:
    """Run the Python program ``source`` in the sandbox and classify how it ended.

    ``limits`` defaults to ``Limits()`` (10 s wall clock, 1 GiB address space, see the module
    docstring). ``isolation="auto"`` uses ``isolation_mode()``; naming a mode forces it (a mode that
    cannot work here gives ``status == "error"``). Never raises for anything the program does.
    """
    mode = isolation_mode() if isolation == "auto" else isolation
    return _run(source, limits or Limits(), mode)


def run_many(
    programs: Iterable[str],
    workers: int = 2,
    limits: Limits | None = None,
    isolation: IsolationMode | Literal["auto"] = "auto",
    on_result: Callable[[int, Outcome], None] | None = None,
) -> list[Outcome]:
    """Run ``programs`` on ``workers`` threads (default 2), each in its own sandboxed process.

    ``programs`` may be a generator fed by a model: each program starts as soon as it is yielded,
    so tests run while generation continues. Returns the outcomes in input order.
    ``on_result(index, outcome)``, if given, is called as each program finishes, from a worker
    thread.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if isolation == "auto":
        isolation = isolation_mode()  # probe once, before the threads race for it
    futures: list[Future[Outcome]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cgstudio-sandbox") as pool:
        for index, source in enumerate(programs):
            future = pool.submit(run_program, source, limits, isolation)
            if on_result is not None:
                future.add_done_callback(_report(index, on_result))
            futures.append(future)
    return [future.result() for future in futures]


def _report(index: int, callback: Callable[[int, Outcome], None]) -> Callable[[Future[Outcome]], None]:
    def done(future: Future[Outcome]) -> None:
        if future.exception() is None:
            callback(index, future.result())

    return done


def _run(source: str, limits: Limits, mode: IsolationMode) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="cgstudio-sandbox-") as tmp:
        host_dir = Path(tmp)
        workdir = host_dir / "work"
        workdir.mkdir()
        program = workdir / "program.py"
        program.write_text(source, encoding="utf-8")
        config = _config(mode, limits, program)
        argv = _command(mode, config)
        with open(host_dir / "stderr", "w+b") as err, open(host_dir / "status", "w+b") as status:
            started = time.monotonic()
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=status,
                    stderr=err,
                    cwd=workdir,
                    env={"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8"},
                    start_new_session=True,  # its own process group, killed as a whole
                )
            except OSError as exc:
                return Outcome("error", 0.0, f"cannot start sandbox: {exc}", mode)
            timed_out = False
            try:
                proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            # Also after a normal exit: without namespaces, background children may linger.
            _kill_group(proc)
            duration = time.monotonic() - started
            return _outcome(mode, proc.returncode, timed_out, duration, _tail(err), _status(status))


def _config(mode: IsolationMode, limits: Limits, program: Path) -> dict[str, Any]:
    workdir = str(program.parent) if mode == "none" else "/tmp/work"
    return {
        "mode": mode,
        "program": str(program),
        "workdir": str(program.parent),
        "python": sys.executable,
        # Scrubbed: nothing of ours (API keys, tokens, paths) reaches the program.
        "env": {
            "PATH": _SYSTEM_PATH,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": workdir,
            "TMPDIR": workdir,
        },
        "limits": {
            "cpu_s": limits.cpu_limit_s(),
            "memory_bytes": limits.memory_bytes,
            "processes": limits.processes,
            "file_bytes": limits.file_bytes,
        },
        "tmpfs_bytes": limits.tmpfs_bytes,
        "host_root": os.geteuid() == 0,
        "uid": SANDBOX_UID,
        "gid": SANDBOX_GID,
        "reveal": _reveal_map() if mode == "root-drop" else {},
    }


def _command(mode: IsolationMode, config: dict[str, Any]) -> list[str]:
    init = [sys.executable, "-I", "-S", str(_INIT_SCRIPT), json.dumps(config)]
    if mode == "none":
        return init
    unshare = _unshare() or "unshare"
    namespaces = ["--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"]
    namespaces += ["--mount", "--net", "--ipc", "--uts"]
    if mode == "userns":
        namespaces += ["--user", "--map-root-user"]
    return [unshare, *namespaces, "--", *init]


def _interpreter_dirs() -> list[str]:
    dirs = {
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.prefix),
        os.path.dirname(os.path.realpath(sys.executable)),
    }
    # Keep only outermost directories: bind-mounting a parent already exposes its children.
    return sorted(d for d in dirs if not any(d != o and d.startswith(o.rstrip("/") + "/") for o in dirs))


def _reveal_map() -> dict[str, list[str]]:
    """For root-drop: map each directory that "other" users cannot traverse (e.g. /root, 0700) to
    the interpreter directories below it that the unprivileged program must still reach."""
    reveal: dict[str, list[str]] = {}
    for target in _interpreter_dirs():
        parts = Path(target).parts
        for depth in range(2, len(parts)):
            ancestor = os.path.join(*parts[:depth])
            try:
                mode = os.stat(ancestor).st_mode
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                reveal.setdefault(ancestor, []).append(target)
                break
    return reveal


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group (``unshare``, the namespace init and anything that stayed in the
    group), reap ``proc``, then wait until no live process of the group remains. When isolated,
    killing the init tears down the PID namespace; the kernel finishes that before the init
    becomes a zombie, so an empty group means an empty namespace."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + _GROUP_EXIT_WAIT_S
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _group_alive(pgid: int) -> bool:
    """True while a non-zombie process has process group ``pgid`` (Linux /proc; else False)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _tail(fh: BinaryIO) -> str:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - 4 * STDERR_TAIL_CHARS))
    return fh.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]


def _status(fh: BinaryIO) -> dict[str, Any]:
    fh.seek(0)
    status: dict[str, Any] = {}
    for line in fh.read(65536).decode("utf-8", "replace").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            # A setup error from the forked child comes before the init's own exit record.
            for key, value in item.items():
                status.setdefault(key, value)
    return status


def _outcome(
    mode: IsolationMode,
    returncode: int | None,
    timed_out: bool,
    duration: float,
    stderr: str,
    status: dict[str, Any],
) -> Outcome:
    def make(state: Status, code: int | None = None, sig: int | None = None, extra: str = "") -> Outcome:
        return Outcome(state, duration, (stderr + extra)[-STDERR_TAIL_CHARS:], mode, code, sig)

    if timed_out:
        return make("timed_out")
    if "setup_error" in status:
        return make("error", extra=f"\nsandbox setup failed: {status['setup_error']}")
    if mode == "none":
        # The helper execs the program, so the return code is the program's own.
        if returncode is None:
            return make("error", extra="\nsandbox: no exit status")
        sig = -returncode if returncode < 0 else None
        code = returncode if returncode >= 0 else None
    else:
        sig, code = status.get("signal"), status.get("exit")
        if sig is None and code is None:
            return make("error", extra=f"\nsandbox: init died without a status (exit {returncode})")
    if sig is not None:
        # SIGXCPU: RLIMIT_CPU reached, i.e. a CPU-bound timeout.
        return make("timed_out" if sig == signal.SIGXCPU else "error", sig=sig)
    return make("passed" if code == 0 else "failed", code)
