"""Sandbox stage run as a script, ``python -I -S _sandbox_init.py CONFIG_JSON``; stdlib only.

It is started by ``cgstudio.evaluation.sandbox`` and is not imported by it. Two roles:

* ``mode == "none"`` (no namespaces): join the run's cgroups, drop to ``nobody`` when the parent
  says so, set the resource limits and ``exec`` the harness.
* ``mode in ("root-drop", "userns")``: we are PID 1 of fresh PID, mount, network, IPC and UTS
  namespaces made by ``unshare``. Join the run's cgroups, build a minimal root on a tmpfs (the
  interpreter read-only, /dev/null, /dev/urandom, a private /tmp holding the working directory),
  pivot into it, then fork the harness with privileges dropped and wait for it. Because we stay
  alive as the namespace's init, the kernel kills every process left in the namespace (daemonised,
  ``setsid``-ed or not) as soon as we exit or are killed.

The harness (``_sandbox_harness.py``, passed as ``-c`` text) runs ``program.py`` and writes the
run's token to the result descriptor if the program reached its end; it inherits stdin (the token),
the result descriptor and stderr, and its stdout goes to ``/dev/null``.

Our stdout is a status channel to the parent: one JSON line, ``{"exit": n}``, ``{"signal": n}`` or
``{"setup_error": "..."}``.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import resource
import sys
from typing import Any

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38

# Per-mount flags shown in /proc/self/mountinfo field 6. A bind remount must restate them: inside a
# user namespace, mounts inherited from the parent have them locked and dropping one is EPERM.
_MOUNT_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
}
SETUP_FAILED = 125
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41}  # syscall numbers; elsewhere: chroot

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


class SetupError(Exception):
    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.errno = code


def _status(payload: dict[str, Any]) -> None:
    os.write(1, (json.dumps(payload) + "\n").encode())


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise SetupError(f"mount {source} on {target} ({fstype}, flags {flags:#x}): {os.strerror(err)}", err)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "surrogateescape")


def _join_cgroups(procs_files: list[str]) -> None:
    # "0" is the writing process; everything it forks afterwards is born inside the group.
    for path in procs_files:
        with open(path, "w", encoding="ascii") as fh:
            fh.write("0")


def _mounts_under(root: str) -> list[tuple[str, list[str]]]:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        mounts = [line.split() for line in fh]
    out = []
    for fields in mounts:
        target = _unescape(fields[4])
        if target == root or target.startswith(root + "/"):
            out.append((target, fields[5].split(",")))
    return out


def _remount_read_only(root: str, writable: set[str], devices: set[str]) -> None:
    """Make every mount under ``root`` read-only and nosuid, and nodev except the device nodes."""
    for target, options in _mounts_under(root):
        if target in writable:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        if target not in devices:
            flags |= MS_NODEV
        for opt in options:
            flags |= _MOUNT_FLAGS.get(opt, 0)
        if not flags & (MS_NOATIME | MS_RELATIME):
            flags |= MS_STRICTATIME
        _mount(None, target, None, flags)


def _make_mount_point(target: str, directory: bool) -> None:
    if directory:
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))


def _build_root(config: dict[str, Any], program: bytes) -> str:
    """Assemble the sandbox's file system on a fresh tmpfs at ``root_dir`` and return that path.

    It holds only read-only bind mounts of what the interpreter needs (``root_plan["binds"]``: its
    prefixes and the directories of the shared libraries it loads) and the symlinks that lead to
    them, /dev/null and /dev/urandom, and a private tmpfs at /tmp holding the working directory.
    Nothing else of the host is reachable after the pivot: no /etc, /home, /root, no host /tmp, no
    Unix sockets. ``root_dir`` is an empty directory the parent made, so the tmpfs hides nothing
    that a bind needs (an interpreter under the host's /tmp included)."""
    root = config["root_dir"]
    plan = config["root_plan"]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0755")
    tmp = root + "/tmp"
    os.makedirs(tmp, mode=0o755)
    _mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={config['tmpfs_bytes']},mode=0755")
    for source in plan["binds"]:
        target = root + source
        _make_mount_point(target, os.path.isdir(source))
        # MS_REC: in a user namespace a bind that would uncover what a locked submount hides is
        # refused; every submount is made read-only below like the rest.
        _mount(source, target, None, MS_BIND | MS_REC)
    for path, link in plan["symlinks"]:
        os.makedirs(os.path.dirname(root + path), mode=0o755, exist_ok=True)
        os.symlink(link, root + path)
    devices = set()
    for device in plan["devices"]:
        target = root + device
        _make_mount_point(target, directory=False)
        _mount(device, target, None, MS_BIND)
        devices.add(target)
    workdir = root + config["sandbox_workdir"]
    os.makedirs(workdir, mode=0o700)
    with open(os.path.join(workdir, "program.py"), "wb") as fh:
        fh.write(program)
    if config["drop_to"] is not None:
        uid, gid = config["drop_to"]
        os.chown(workdir, uid, gid)
        os.chown(os.path.join(workdir, "program.py"), uid, gid)
    _remount_read_only(root, writable={tmp}, devices=devices)
    return root


def _enter_root(root: str) -> None:
    """pivot_root into ``root`` and detach the old root, so that no path leads back to the host."""
    os.chdir(root)
    number = _PIVOT_ROOT.get(platform.machine())
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        # The old root is now stacked on top of "/"; detaching it leaves only the new one.
        if _libc.umount2(b".", MNT_DETACH) != 0:
            raise SetupError(f"cannot detach the old root: {os.strerror(ctypes.get_errno())}")
    else:
        # No pivot_root: chroot. The program has no CAP_SYS_CHROOT, so it cannot climb back out.
        os.chroot(".")
    os.chdir("/")


def _set_limits(limits: dict[str, int]) -> None:
    cpu = limits["cpu_s"]
    # CPU: SIGXCPU at the soft limit, SIGKILL one second later if it is caught.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _capability_check() -> int:
    """The highest capability number, after refusing inheritable or ambient capabilities. Reads
    /proc, so it runs before the pivot."""
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as fh:
        last = int(fh.read())
    # Inheritable and ambient capabilities would survive exec despite the bounding set; nothing we
    # start sets them, so refuse rather than clear them.
    with open("/proc/self/status", encoding="ascii") as fh:
        caps = dict(line.split(":\t", 1) for line in fh if line.startswith(("CapInh", "CapAmb")))
    if any(int(value, 16) for value in caps.values()):
        raise SetupError(f"unexpected inheritable/ambient capabilities: {caps}")
    return last


def _drop_capability_bounding_set(last: int) -> None:
    # With an empty bounding set an exec as uid 0 gains no capabilities (the "userns" mode keeps
    # uid 0 inside its user namespace; without this it could undo the read-only mounts).
    for cap in range(last + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise SetupError(f"cannot drop capability {cap}: {os.strerror(ctypes.get_errno())}")


def _exec_program(config: dict[str, Any]) -> None:
    """Become the harness that runs the program (never returns). Stdin (the run's token) and the
    result descriptor are inherited; stdout goes to /dev/null."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)
    os.close(devnull)
    python = config["python"]
    argv = [python, "-I", "-c", config["harness"], str(config["result_fd"])]
    os.execve(python, argv, config["env"])


def _child(config: dict[str, Any], last_cap: int | None) -> None:
    try:
        if config["mode"] == "none":
            _join_cgroups(config["cgroup_procs"])
        if last_cap is not None:
            _drop_capability_bounding_set(last_cap)
        # Before the drop: without namespaces the path to the working directory crosses the
        # parent's private (0700) temporary directory, which nobody cannot traverse.
        os.chdir(config["workdir"] if config["mode"] == "none" else config["sandbox_workdir"])
        if config["drop_to"] is not None:
            uid, gid = config["drop_to"]
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise SetupError("cannot set no_new_privs")
        # Limits last: RLIMIT_NPROC then counts the final user's processes, not root's.
        _set_limits(config["limits"])
        _exec_program(config)
    except (OSError, SetupError) as exc:
        _status({"setup_error": f"{type(exc).__name__}: {exc}"})
        os._exit(SETUP_FAILED)


def _prepare_namespace(config: dict[str, Any]) -> int:
    """Join the run's cgroups, build the minimal root and pivot into it; return cap_last_cap."""
    _join_cgroups(config["cgroup_procs"])
    with open(config["program"], "rb") as fh:
        program = fh.read()
    last_cap = _capability_check()
    # Keep mount events from leaking back to the host namespace.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _enter_root(_build_root(config, program))
    return last_cap


def _init(config: dict[str, Any]) -> int:
    try:
        last_cap = _prepare_namespace(config)
    except (OSError, SetupError) as exc:
        _status({"setup_error": f"{type(exc).__name__}: {exc}"})
        return SETUP_FAILED
    pid = os.fork()
    if pid == 0:
        _child(config, last_cap)
    # As PID 1 we also inherit orphans; reap them until the program itself exits.
    while True:
        reaped, status = os.waitpid(-1, 0)
        if reaped == pid:
            break
    if os.WIFSIGNALED(status):
        _status({"signal": os.WTERMSIG(status)})
        return 128 + os.WTERMSIG(status)
    code = os.waitstatus_to_exitcode(status)
    _status({"exit": code})
    return code


def main() -> None:
    config = json.loads(sys.argv[1])
    if config["mode"] == "none":
        _child(config, None)  # execs the harness or exits
    os._exit(_init(config))


if __name__ == "__main__":
    main()
