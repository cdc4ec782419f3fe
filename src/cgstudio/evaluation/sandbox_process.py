"""The sandboxed process as the parent sees it: the configuration and command line that start
``_sandbox_init.py`` (under ``unshare`` when isolated), the uid it drops to, killing its process
group, and the status records it leaves. ``sandbox`` runs it and classifies the outcome."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cgstudio.evaluation import cgroups, rootfs

if TYPE_CHECKING:
    from cgstudio.evaluation.sandbox import IsolationMode, Limits

SANDBOX_UID = SANDBOX_GID = 65534  # nobody/nogroup
FALLBACK_PROCESSES = 4  # without a cgroup: RLIMIT_NPROC, and RLIMIT_AS = memory_bytes / this
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_INIT_SCRIPT = Path(__file__).with_name("_sandbox_init.py")
_HARNESS = Path(__file__).with_name("_sandbox_harness.py")
_GROUP_EXIT_WAIT_S = 5.0


def unshare_path() -> str | None:
    return shutil.which("unshare", path=SYSTEM_PATH)


def init_config(
    mode: IsolationMode, limits: Limits, program: Path, group: cgroups.RunGroup | None, result_fd: int
) -> dict[str, Any]:
    plan = rootfs.root_plan() if mode != "none" else {"binds": [], "symlinks": [], "devices": []}
    sandbox_workdir = rootfs.workdir_for(plan) if mode != "none" else str(program.parent)
    drop = drop_to(mode)
    if mode == "none" and drop is not None:
        for path in (program.parent, program):
            os.chown(path, *drop)
    if group is None:
        # No cgroup: bound the total by processes x per-process address space.
        processes = min(limits.processes, FALLBACK_PROCESSES)
        memory = limits.memory_bytes // processes
    else:
        processes, memory = limits.processes, limits.memory_bytes
    return {
        "mode": mode,
        "program": str(program),
        "workdir": str(program.parent),
        "sandbox_workdir": sandbox_workdir,
        "root_dir": str(program.parent.parent / "root"),
        "root_plan": plan,
        "python": sys.executable,
        "harness": _HARNESS.read_text(encoding="utf-8"),
        "result_fd": result_fd,
        # Scrubbed: nothing of ours (API keys, tokens, paths) reaches the program.
        "env": {
            "PATH": SYSTEM_PATH,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": sandbox_workdir,
            "TMPDIR": sandbox_workdir,
        },
        "limits": {
            "cpu_s": limits.cpu_limit_s(),
            "memory_bytes": memory,
            "processes": processes,
            "file_bytes": limits.file_bytes,
        },
        "tmpfs_bytes": limits.tmpfs_bytes,
        "drop_to": drop,
        "cgroup_procs": group.procs_files if group is not None else [],
    }


def command(mode: IsolationMode, config: dict[str, Any]) -> list[str]:
    init = [sys.executable, "-I", "-S", str(_INIT_SCRIPT), json.dumps(config)]
    if mode == "none":
        return init
    unshare = unshare_path() or "unshare"
    namespaces = ["--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private"]
    namespaces += ["--mount", "--net", "--ipc", "--uts"]
    if mode == "userns":
        namespaces += ["--user", "--map-root-user"]
    return [unshare, *namespaces, "--", *init]


def drop_to(mode: IsolationMode) -> tuple[int, int] | None:
    """The (uid, gid) the program drops to: nobody in root-drop, and in "none" when we are root and
    nobody can reach the interpreter; else None (it keeps the uid it starts with)."""
    if mode == "root-drop":
        return SANDBOX_UID, SANDBOX_GID
    if mode == "none" and os.geteuid() == 0 and _others_can_run_interpreter():
        return SANDBOX_UID, SANDBOX_GID
    return None


def _others_can_run_interpreter() -> bool:
    """True if a user with no special rights can traverse to and run the interpreter and its
    prefixes (every directory on the way has o+x)."""
    for path in {os.path.realpath(p) for p in (sys.executable, sys.prefix, sys.base_prefix)}:
        current = path
        while True:
            try:
                mode = os.stat(current).st_mode
            except OSError:
                return False
            if not mode & stat.S_IXOTH:
                return False
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
    return True


def kill_group(proc: subprocess.Popen[bytes]) -> None:
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


def read_status(fh: BinaryIO) -> dict[str, Any]:
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
