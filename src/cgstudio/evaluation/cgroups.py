"""A memory (and process) budget for a whole sandbox run: one cgroup per run, where one can be made.

RLIMIT_AS bounds each process, not their sum: six children of 700 MB each stay under a 1 GiB
RLIMIT_AS and reach 4 GB together. A cgroup charges every process of the run to one budget:

* cgroup v2 (``memory.max``, ``memory.swap.max = 0``, ``pids.max``) when the unified hierarchy has
  the memory controller for our cgroup's children;
* else cgroup v1 (``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes`` when swap is
  accounted, and the ``pids`` hierarchy's ``pids.max``) when those hierarchies are writable;
* else none: the sandbox then bounds the total with RLIMIT_NPROC x RLIMIT_AS instead (see
  ``sandbox``), which is weaker and is reported as such.

The group is made by the parent before the run; the sandbox's first process writes itself into
``cgroup.procs`` before it forks anything, so every process of the run is born inside. When the
budget is exhausted the kernel's OOM killer kills a process of the group (never one outside it).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

CgroupKind = Literal["cgroup-v2", "cgroup-v1", "none"]
_counter = itertools.count()
_lock = threading.Lock()
_support: Support | None = None


@dataclass(frozen=True)
class Support:
    """Where run groups can be made: ``memory`` (and ``pids``, possibly None) parent directories."""

    kind: CgroupKind
    memory: Path | None = None
    pids: Path | None = None
    reason: str = ""


@dataclass
class RunGroup:
    """The cgroup(s) of one run. ``procs_files``: what the sandbox's first process writes "0" to."""

    kind: CgroupKind
    dirs: list[Path]
    procs_files: list[str]

    def oom_killed(self) -> bool:
        """True if the kernel killed a process of this run for the group's memory limit."""
        for d in self.dirs:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError):
                    for line in (d / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
        return False

    def kill(self) -> None:
        """SIGKILL every process still in the group (e.g. one that left the process group with
        setsid in the unisolated mode)."""
        for d in self.dirs:
            with contextlib.suppress(OSError):
                if (d / "cgroup.kill").exists():
                    (d / "cgroup.kill").write_text("1")
                    continue
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        """Remove the groups; the processes are gone, but the kernel may need a moment to see it."""
        for d in self.dirs:
            deadline = time.monotonic() + 2.0
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if time.monotonic() > deadline:
                        log.warning("cannot remove sandbox cgroup %s: %s", d, exc)
                        break
                    time.sleep(0.01)


def support() -> Support:
    """The cgroup kind usable here, probed once per process (a test group is made and removed)."""
    global _support
    with _lock:
        if _support is None:
            _support = _probe()
            log.debug("sandbox cgroups: %s", _support)
        return _support


def create(memory_bytes: int, processes: int) -> RunGroup | None:
    """A run group limited to ``memory_bytes`` (no swap) and ``processes`` tasks, or None when no
    cgroup can be made here (or making this one failed: logged)."""
    found = support()
    if found.kind == "none":
        return None
    try:
        return _make(found, memory_bytes, processes)
    except OSError as exc:
        log.warning("cannot make a sandbox cgroup (%s); this run has per-process limits only", exc)
        return None


def _make(found: Support, memory_bytes: int, processes: int) -> RunGroup:
    name = f"cgstudio-sandbox-{os.getpid()}-{next(_counter)}"
    group = RunGroup(found.kind, [], [])
    try:
        assert found.memory is not None
        mem = found.memory / name
        mem.mkdir()
        group.dirs.append(mem)
        if found.kind == "cgroup-v2":
            (mem / "memory.max").write_text(str(memory_bytes))
            _write_if_present(mem / "memory.swap.max", "0")
            _write_if_present(mem / "pids.max", str(processes))
            group.procs_files.append(str(mem / "cgroup.procs"))
            return group
        (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
        # Only when swap is accounted; must follow limit_in_bytes (memsw may not be below it).
        _write_if_present(mem / "memory.memsw.limit_in_bytes", str(memory_bytes))
        group.procs_files.append(str(mem / "cgroup.procs"))
        if found.pids is not None:
            pids = found.pids / name
            pids.mkdir()
            group.dirs.append(pids)
            (pids / "pids.max").write_text(str(processes))
            group.procs_files.append(str(pids / "cgroup.procs"))
        return group
    except OSError:
        group.remove()
        raise


def _write_if_present(path: Path, value: str) -> None:
    if path.exists():
        path.write_text(value)


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for the unified hierarchy) -> our cgroup path, from /proc/self/cgroup."""
    out: dict[str, str] = {}
    with open("/proc/self/cgroup", encoding="utf-8") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                out[controller] = path
    return out


def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fstype, super options) of each mount, from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 3:
                out.append((fields[4], tail[0], tail[2].split(",")))
    return out


def _probe() -> Support:
    if not os.path.exists("/proc/self/cgroup"):
        return Support("none", reason="no /proc/self/cgroup (not Linux)")
    try:
        own, mounts = _own_cgroups(), _mounts()
    except (OSError, ValueError) as exc:
        return Support("none", reason=f"cannot read cgroup information: {exc}")
    reasons = []
    for kind, candidate in (("cgroup-v2", _v2(own, mounts)), ("cgroup-v1", _v1(own, mounts))):
        if isinstance(candidate, str):
            reasons.append(f"{kind}: {candidate}")
            continue
        try:
            group = _make(candidate, 64 << 20, 8)
        except OSError as exc:
            reasons.append(f"{kind}: cannot make a group: {exc}")
            continue
        try:
            joined = _can_join(group)
        finally:
            group.remove()
        if joined:
            return candidate
        reasons.append(f"{kind}: a process cannot move itself into a group we made")
    return Support("none", reason="; ".join(reasons))


def _can_join(group: RunGroup) -> bool:
    """Whether a child process can write itself into the group, as the sandbox's first one will."""
    join = "import sys\nfor path in sys.argv[1:]:\n    open(path, 'w').write('0')\n"
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", join, *group.procs_files], capture_output=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _v2(own: dict[str, str], mounts: list[tuple[str, str, list[str]]]) -> Support | str:
    point = next((m for m, fstype, _ in mounts if fstype == "cgroup2"), None)
    if point is None or "" not in own:
        return "no cgroup2 hierarchy"
    base = Path(point + own[""].rstrip("/"))
    try:
        enabled = (base / "cgroup.subtree_control").read_text().split()
        if "memory" not in enabled:
            available = (base / "cgroup.controllers").read_text().split()
            if "memory" not in available:
                return f"the memory controller is not available in {base}"
            # Fails (EBUSY) if processes live in a non-root cgroup: the "no internal processes" rule.
            wanted = " ".join(f"+{c}" for c in ("memory", "pids") if c in available)
            (base / "cgroup.subtree_control").write_text(wanted)
    except OSError as exc:
        return f"cannot enable the memory controller for children of {base}: {exc}"
    return Support("cgroup-v2", memory=base)


def _v1(own: dict[str, str], mounts: list[tuple[str, str, list[str]]]) -> Support | str:
    def hierarchy(controller: str) -> Path | None:
        for point, fstype, options in mounts:
            if fstype == "cgroup" and controller in options and controller in own:
                path = Path(point + own[controller].rstrip("/"))
                if os.access(path, os.W_OK):
                    return path
        return None

    memory = hierarchy("memory")
    if memory is None:
        return "no writable memory hierarchy"
    return Support("cgroup-v1", memory=memory, pids=hierarchy("pids"))
