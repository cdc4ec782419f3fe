"""Sandbox stage run as a script, ``python -I -S _sandbox_init.py CONFIG_JSON``; stdlib only.

It is started by ``cgstudio.evaluation.sandbox`` and is not imported by it. Two roles:

* ``mode == "none"`` (no namespaces): set the resource limits and ``exec`` the program.
* ``mode in ("root-drop", "userns")``: we are PID 1 of fresh PID, mount, network, IPC and UTS
  namespaces made by ``unshare``. Make every mount read-only, give the program a small private
  tmpfs at ``/tmp`` as its working directory, then fork the program with privileges dropped and
  wait for it. Because we stay alive as the namespace's init, the kernel kills every process left
  in the namespace (daemonised, ``setsid``-ed or not) as soon as we exit or are killed.

Its stdout is a status channel to the parent: one JSON line, ``{"exit": n}``, ``{"signal": n}`` or
``{"setup_error": "..."}``. The program's stdout goes to ``/dev/null``; its stderr is inherited.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
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
WORKDIR = "/tmp/work"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


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


def _remount_all_read_only(strict: bool) -> None:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        mounts = [line.split() for line in fh]
    for fields in mounts:
        target, options = _unescape(fields[4]), fields[5].split(",")
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for opt in options:
            flags |= _MOUNT_FLAGS.get(opt, 0)
        if not flags & (MS_NOATIME | MS_RELATIME):
            flags |= MS_STRICTATIME
        try:
            _mount(None, target, None, flags)
        except SetupError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                # The path no longer leads to this mount's root: it is shadowed (e.g. the host's
                # /proc/sys/fs/binfmt_misc under our new /proc) or its mount point was deleted, so
                # nothing can reach it. Whatever the path does lead to has its own entry.
                continue
            # Without host root, some kernel views under /proc and /sys refuse a remount inside a
            # user namespace, and an unprivileged program cannot write them anyway. With host root
            # (the program may run as host uid 0 without capabilities) every failure is fatal, as is
            # any other mount left writable.
            if not strict and target.startswith(("/proc/", "/sys/")):
                continue
            raise


def _reveal(blocked: str, paths: list[str]) -> None:
    """Cover ``blocked`` (a directory the sandbox user cannot enter) with a tmpfs skeleton that holds
    read-only bind mounts of just ``paths`` (the interpreter's directories), so the unprivileged
    program can run a Python that lives under e.g. /root while the rest of /root stays hidden."""
    fd = os.open(blocked, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _mount("tmpfs", blocked, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
        for path in paths:
            rel = os.path.relpath(path, blocked)
            target = os.path.join(blocked, rel)
            os.makedirs(target, mode=0o755, exist_ok=True)
            # /proc/self/fd/N still names the real directory under the tmpfs we just mounted.
            _mount(f"/proc/self/fd/{fd}/{rel}", target, None, MS_BIND | MS_REC)
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        _mount(None, blocked, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    finally:
        os.close(fd)


def _set_limits(limits: dict[str, int]) -> None:
    cpu = limits["cpu_s"]
    # CPU: SIGXCPU at the soft limit, SIGKILL one second later if it is caught.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"], limits["processes"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_capability_bounding_set() -> None:
    # With an empty bounding set an exec as uid 0 gains no capabilities (the "userns" mode keeps
    # uid 0 inside its user namespace; without this it could undo the read-only remounts).
    with open("/proc/sys/kernel/cap_last_cap", encoding="ascii") as fh:
        last = int(fh.read())
    for cap in range(last + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise SetupError(f"cannot drop capability {cap}: {os.strerror(ctypes.get_errno())}")
    # Inheritable and ambient capabilities would survive exec despite the bounding set; nothing we
    # start sets them, so refuse rather than clear them.
    with open("/proc/self/status", encoding="ascii") as fh:
        caps = dict(line.split(":\t", 1) for line in fh if line.startswith(("CapInh", "CapAmb")))
    if any(int(value, 16) for value in caps.values()):
        raise SetupError(f"unexpected inheritable/ambient capabilities: {caps}")


def _exec_program(config: dict[str, Any], workdir: str) -> None:
    """Become the program (never returns). Runs in the process that will exec it."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    os.chdir(workdir)
    python = config["python"]
    os.execve(python, [python, "-I", "program.py"], config["env"])


def _child(config: dict[str, Any]) -> None:
    try:
        if config["mode"] != "none":
            _drop_capability_bounding_set()
        if config["mode"] == "root-drop":
            os.setgroups([])
            os.setresgid(config["gid"], config["gid"], config["gid"])
            os.setresuid(config["uid"], config["uid"], config["uid"])
        if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise SetupError("cannot set no_new_privs")
        # Limits last: RLIMIT_NPROC then counts the final user's processes, not root's.
        _set_limits(config["limits"])
        workdir = config["workdir"] if config["mode"] == "none" else WORKDIR
        _exec_program(config, workdir)
    except (OSError, SetupError) as exc:
        _status({"setup_error": f"{type(exc).__name__}: {exc}"})
        os._exit(SETUP_FAILED)


def _prepare_namespace(config: dict[str, Any]) -> None:
    with open(config["program"], "rb") as fh:
        program = fh.read()
    # Keep mount events from leaking back to the host namespace.
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _remount_all_read_only(strict=config["host_root"])
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={config['tmpfs_bytes']},mode=0755")
    os.mkdir(WORKDIR, 0o700)
    with open(os.path.join(WORKDIR, "program.py"), "wb") as fh:
        fh.write(program)
    if config["mode"] == "root-drop":
        os.chown(WORKDIR, config["uid"], config["gid"])
        os.chown(os.path.join(WORKDIR, "program.py"), config["uid"], config["gid"])
    for blocked, paths in config["reveal"].items():
        _reveal(blocked, paths)


def _init(config: dict[str, Any]) -> int:
    try:
        _prepare_namespace(config)
    except (OSError, SetupError) as exc:
        _status({"setup_error": f"{type(exc).__name__}: {exc}"})
        return SETUP_FAILED
    pid = os.fork()
    if pid == 0:
        _child(config)
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
        _child(config)  # execs the program or exits
    os._exit(_init(config))


if __name__ == "__main__":
    main()
