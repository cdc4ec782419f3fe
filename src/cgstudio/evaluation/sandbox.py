"""Run untrusted Python programs (model completions plus their tests) in a sandbox.

Nothing is executed in-process. Each program is written to a fresh temporary directory and run by
``sys.executable -I`` (isolated mode: no user site, no ``PYTHON*`` variables, script directory not
on ``sys.path``) under a small harness (``_sandbox_harness.py``), in its own session, with a
scrubbed environment, stdout on /dev/null and stderr captured to a file.

**Passing.** A program passes only if it ran to its end: the harness writes a random per-run token
to a descriptor after the program's last statement (``check(entry_point)``) has returned, and the
token reaches the harness on stdin before the program starts (then stdin is /dev/null). Exit status
0 alone is not a pass: ``exit()``, ``quit()``, ``sys.exit(0)``, ``os._exit(0)`` and ``raise
SystemExit`` end the program early with status 0. The harness's docstring states the threat model.

**Limits** (``Limits``; defaults):

* wall clock ``timeout_s`` = 10 s, sized for a slow 2-core machine running two programs at once:
  HumanEval canonical solutions take 0.07 s (median) to 0.22 s (max) there, sandbox start-up
  included; on expiry the whole process group and, when isolated, the whole PID namespace is
  SIGKILLed;
* memory ``memory_bytes`` = 1 GiB **for the whole run**, all its processes together, by a cgroup
  made per run (``cgroups``: v2, else v1) and ``RLIMIT_AS`` = 1 GiB per process. Where no cgroup
  can be made the total is bounded by ``RLIMIT_NPROC`` x ``RLIMIT_AS`` instead: at most
  ``FALLBACK_PROCESSES`` (4) processes of ``memory_bytes / 4`` each;
* processes: ``pids.max`` = ``processes`` (64) in the run's cgroup where the pids controller is
  there, and ``RLIMIT_NPROC`` (per user: all programs running as ``nobody`` together; the kernel
  ignores it for uid 0);
* ``RLIMIT_CPU`` = ``cpu_s`` (default ``ceil(timeout_s) + 1`` s), ``RLIMIT_FSIZE`` = 16 MiB per
  file, no core dumps.

**Isolation.** On Linux the program is also isolated with namespaces made by util-linux ``unshare``
(new PID, mount, network, IPC and UTS namespaces; ``_sandbox_init.py`` runs as PID 1 inside):

* the file system is a **minimal root** (``rootfs``): a tmpfs holding read-only binds of the
  interpreter's prefixes and shared-library directories, /dev/null, /dev/urandom and a private
  64 MiB /tmp with the working directory ``/tmp/work`` (the only writable place). The host's /etc,
  /home, /root, /tmp, sockets and other sandboxes are not there at all; the interpreter is bound
  at its own path, so it may live anywhere (under /root, under /tmp, in a venv);
* the network namespace has only a down loopback device: no connection can be made (Unix sockets
  by path are unreachable too: no host path exists inside);
* the PID namespace hides every other process, so none can be signalled; when the init exits or is
  killed the kernel kills everything left inside, ``setsid``/double-fork escapes included;
* ``"root-drop"`` mode (when we are root): the program runs as ``nobody`` (uid/gid 65534) with
  no capabilities and ``no_new_privs``;
* ``"userns"`` mode (not root, or root-drop unavailable): a user namespace maps us to root inside
  it, which is what allows the other namespaces; the program keeps that uid but loses every
  capability (empty bounding set, ``no_new_privs``), so it cannot undo the read-only mounts.

If no namespace mode works (not Linux, no ``unshare``, or a container that forbids namespaces) the
program runs with only the limits above in a temporary directory (as ``nobody`` when we are root
and ``nobody`` can reach the interpreter). That is reported as ``Outcome.isolation == "none"``.

Every mode weaker than the strongest (root-drop with cgroups) says so: ``containment()`` describes
what is in force and its ``warnings``; ``isolation_mode()`` logs them once, loudly, and eval
reports record them.

``isolation_mode()`` probes the modes once per process (about 0.2 s) and caches the answer.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
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

from cgstudio.evaluation import cgroups, rootfs
from cgstudio.evaluation.sandbox_process import (
    FALLBACK_PROCESSES,
    SANDBOX_UID,
    SYSTEM_PATH,
    command,
    drop_to,
    init_config,
    kill_group,
    read_status,
    unshare_path,
)

log = logging.getLogger(__name__)

Status = Literal["passed", "failed", "timed_out", "error"]
IsolationMode = Literal["root-drop", "userns", "none"]
MemoryContainment = Literal["cgroup-v2", "cgroup-v1", "rlimit"]

DEFAULT_TIMEOUT_S = 10.0
STDERR_TAIL_CHARS = 2000
_EARLY_EXIT = (
    "\nsandbox: the program exited with status 0 before its end (exit(), quit(), sys.exit(0), "
    "os._exit(0) or SystemExit): not a pass"
)


@dataclass(frozen=True)
class Limits:
    """Resource limits for one program run. Units: seconds and bytes; ``memory_bytes`` is the
    run's total over all its processes where a cgroup can be made (see the module docstring)."""

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

    ``status``: ``passed`` (ran to its end: the harness's token arrived, exit status 0),
    ``failed`` (non-zero exit, e.g. an AssertionError or any other exception, or an early exit
    with status 0), ``timed_out`` (wall clock or CPU limit), ``error`` (killed by another signal,
    e.g. SIGSEGV or the OOM killer at the run's memory budget, or the sandbox itself failed to
    start). ``duration_s`` is wall-clock seconds including sandbox start-up (about 0.1 s for an
    empty program). ``stderr_tail`` is the last ~2000 characters of the program's stderr (plus
    any sandbox note). ``memory``: what bounded the run's total memory.
    """

    status: Status
    duration_s: float
    stderr_tail: str
    isolation: IsolationMode
    returncode: int | None = None  # the program's exit status; None if it did not exit by itself
    signal_number: int | None = None  # the signal that ended it, if any (not set on timeouts)
    memory: MemoryContainment = "rlimit"

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def isolated(self) -> bool:
        """False when the program ran without namespaces (see the module docstring)."""
        return self.isolation != "none"


# ---------------------------------------------------------------------------------------------------
# Isolation mode detection and what it contains


_mode_lock = threading.Lock()
_detect_lock = threading.Lock()
_detected_mode: IsolationMode | None = None
_probe_results: dict[IsolationMode, str | None] = {}


def candidate_modes() -> list[IsolationMode]:
    """Namespace modes worth trying here, strongest first (empty off Linux or without unshare)."""
    if not sys.platform.startswith("linux") or unshare_path() is None:
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
    """The strongest isolation that works here, probed once per process (about 0.2 s) and cached.

    Logs a warning for everything weaker than root-drop with a cgroup (``containment()``)."""
    global _detected_mode
    with _detect_lock:
        if _detected_mode is None:
            _detected_mode = _detect()
            for warning in containment(_detected_mode)["warnings"]:
                log.warning("SANDBOX WEAKER THAN ITS STRONGEST MODE: %s", warning)
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
        "read and write the user's files, open network connections and signal the user's "
        "processes (%s)",
        "; ".join(failures) or f"no util-linux 'unshare' on {sys.platform}",
    )
    return "none"


_PROBE_PROGRAM = "import sys\nassert sys.flags.isolated\n"


def containment(mode: IsolationMode, limits: Limits | None = None) -> dict[str, Any]:
    """What contains a program under ``mode`` here, for reports: ``{isolation, filesystem, network,
    user, memory, processes, warnings}`` (strings; ``warnings``: how this is weaker than
    root-drop with a cgroup, empty when it is not)."""
    limits = limits or Limits()
    support = cgroups.support()
    root = os.geteuid() == 0
    drop = drop_to(mode) is not None
    warnings: list[str] = []
    if mode == "none":
        warnings.append(
            "no namespaces: the program sees the host's file system (it can read every file its "
            "user can and write where that user may), its network and its processes"
        )
        if root and not drop:
            warnings.append(
                "runs as root (nobody cannot reach the interpreter): it can read root-only files such "
                "as /etc/shadow"
            )
    elif mode == "userns" and root:
        warnings.append("root-drop failed: the program runs as host uid 0 without capabilities")
    if support.kind == "none":
        warnings.append(f"no cgroup ({support.reason}): memory is bounded by RLIMIT_NPROC x RLIMIT_AS only")
    uid_zero = (mode == "userns" and root) or (mode == "none" and root and not drop)
    pids_cgroup = support.kind == "cgroup-v2" or support.pids is not None
    if uid_zero and not pids_cgroup:
        warnings.append("RLIMIT_NPROC does not apply to uid 0 and no pids cgroup: forks are unbounded")
    if support.kind != "none":
        memory = f"{support.kind}: {limits.memory_bytes} bytes for all the run's processes together"
    else:
        per = limits.memory_bytes // min(limits.processes, FALLBACK_PROCESSES)
        memory = f"rlimit: at most {min(limits.processes, FALLBACK_PROCESSES)} processes x {per} bytes"
    processes = (
        f"{support.kind} pids.max {limits.processes}"
        if pids_cgroup and support.kind != "none"
        else "RLIMIT_NPROC (per user)" + (", not applied to uid 0" if uid_zero else "")
    )
    if mode == "root-drop" or drop:
        user = f"nobody (uid {SANDBOX_UID}), no capabilities"
    elif mode == "userns":
        user = f"uid 0 of a user namespace (host uid {os.geteuid()}), no capabilities"
    else:
        user = f"host uid {os.geteuid()}"
    return {
        "isolation": mode,
        "filesystem": "host file system" if mode == "none" else "minimal root (interpreter read-only)",
        "network": "host network" if mode == "none" else "none (empty network namespace)",
        "user": user,
        "memory": memory,
        "processes": processes,
        "warnings": warnings,
    }


# ---------------------------------------------------------------------------------------------------
# Running programs


def run_program(
    source: str,
    limits: Limits | None = None,
    isolation: IsolationMode | Literal["auto"] = "auto",
) -> Outcome:
    """Run the Python program ``source`` in the sandbox and classify how it ended.

    ``limits`` defaults to ``Limits()`` (10 s wall clock, 1 GiB, see the module docstring).
    ``isolation="auto"`` uses ``isolation_mode()``; naming a mode forces it (a mode that cannot
    work here gives ``status == "error"``). Never raises for anything the program does.
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
        (host_dir / "root").mkdir()
        program = workdir / "program.py"
        program.write_text(source, encoding="utf-8")
        token = secrets.token_hex(16).encode()
        group = cgroups.create(limits.memory_bytes, limits.processes)
        memory: MemoryContainment = "rlimit" if group is None else group.kind  # type: ignore[assignment]
        try:
            with (
                open(host_dir / "stderr", "w+b") as err,
                open(host_dir / "status", "w+b") as status,
                open(host_dir / "result", "w+b") as result,
            ):
                try:
                    config = init_config(mode, limits, program, group, result.fileno())
                except rootfs.RootPlanError as exc:
                    return Outcome("error", 0.0, f"cannot build the sandbox root: {exc}", mode, memory=memory)
                started = time.monotonic()
                token_in, token_out = os.pipe()
                try:
                    os.write(token_out, token)  # 32 bytes: the pipe buffer holds them
                    os.close(token_out)
                    proc = subprocess.Popen(
                        command(mode, config),
                        stdin=token_in,
                        stdout=status,
                        stderr=err,
                        cwd=workdir,
                        env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
                        start_new_session=True,  # its own process group, killed as a whole
                        pass_fds=(result.fileno(),),
                    )
                except OSError as exc:
                    return Outcome("error", 0.0, f"cannot start sandbox: {exc}", mode, memory=memory)
                finally:
                    os.close(token_in)
                timed_out = False
                try:
                    proc.wait(timeout=limits.timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                # Also after a normal exit: without namespaces, background children may linger.
                kill_group(proc)
                if group is not None:
                    group.kill()
                duration = time.monotonic() - started
                result.seek(0)
                reached_end = token in result.read(4096)
                oom = group is not None and group.oom_killed()
                outcome = _outcome(
                    mode, proc.returncode, timed_out, duration, _tail(err), read_status(status), reached_end
                )
                note = ""
                if oom:
                    note = (
                        f"\nsandbox: the run's memory budget ({limits.memory_bytes >> 20} MiB for all "
                        "its processes) ran out; the kernel killed a process"
                    )
                return Outcome(
                    outcome.status,
                    outcome.duration_s,
                    (outcome.stderr_tail + note)[-STDERR_TAIL_CHARS:],
                    mode,
                    outcome.returncode,
                    outcome.signal_number,
                    memory,
                )
        finally:
            if group is not None:
                group.remove()


def _tail(fh: BinaryIO) -> str:
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - 4 * STDERR_TAIL_CHARS))
    return fh.read().decode("utf-8", "replace")[-STDERR_TAIL_CHARS:]


def _outcome(
    mode: IsolationMode,
    returncode: int | None,
    timed_out: bool,
    duration: float,
    stderr: str,
    status: dict[str, Any],
    reached_end: bool,
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
    if code == 0 and not reached_end:
        return make("failed", code, extra=_EARLY_EXIT)
    return make("passed" if code == 0 else "failed", code)
