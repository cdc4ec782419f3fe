"""What the sandbox's minimal root holds: the interpreter and nothing else of the host.

``root_plan()`` lists, for ``_sandbox_init._build_root``:

* ``binds``: host paths bind-mounted read-only at the same path: ``sys.prefix``, ``sys.base_prefix``
  and the executable's directory (the interpreter, its stdlib and site-packages), and the
  directories of the shared libraries that the executable and its ``lib-dynload`` modules load
  (``ldd``; without ``ldd``: /lib, /lib64, /usr/lib and /usr/lib64 where they exist);
* ``symlinks``: the symlinks on the way to those paths (``/lib -> usr/lib``, a venv's ``bin/python``
  pointing into a pyenv prefix, the dynamic loader's own link), recreated so the same paths resolve;
* ``devices``: /dev/null and /dev/urandom.

Paths are kept as the host spells them, so the interpreter works from any location (under /root,
under /tmp, in a venv) without ``nobody`` having to traverse the host's directories: the skeleton
directories leading to each bind are the sandbox's own (0755).
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from typing import Any

DEVICES = ("/dev/null", "/dev/urandom")
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_FALLBACK_LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")
_MAX_LINKS = 40


class RootPlanError(Exception):
    """The interpreter cannot be given a minimal root (e.g. it lives in /)."""


@functools.cache
def root_plan() -> dict[str, Any]:
    """The binds, symlinks and devices of the minimal root (computed once per process)."""
    wanted = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.abspath(sys.executable))}
    wanted |= {os.path.dirname(path) for path in shared_libraries()}
    binds: set[str] = set()
    symlinks: dict[str, str] = {}
    for path in wanted:
        _expose(os.path.abspath(path), binds, symlinks)
    if "/" in binds:
        raise RootPlanError("the interpreter's files are directly in /: no minimal root can hold them")
    outer = sorted(b for b in binds if not any(_under(b, o) for o in binds if o != b))
    links = sorted((p, t) for p, t in symlinks.items() if not any(_under(p, b) or p == b for b in outer))
    return {"binds": outer, "symlinks": links, "devices": list(DEVICES)}


def workdir_for(plan: dict[str, Any]) -> str:
    """The sandbox's working directory: /tmp/work unless an interpreter bind sits on that path."""
    for candidate in ("/tmp/work", "/tmp/cgstudio-work", "/cgstudio-work"):
        if not any(candidate == b or _under(candidate, b) or _under(b, candidate) for b in plan["binds"]):
            return candidate
    raise RootPlanError(f"no free working directory beside {plan['binds']}")


def shared_libraries() -> list[str]:
    """Shared objects the interpreter and its lib-dynload modules load, as ``ldd`` names them
    (without ``ldd``: the usual library directories)."""
    ldd = shutil.which("ldd", path=_SYSTEM_PATH)
    executable = os.path.realpath(sys.executable)
    dynload = os.path.join(sysconfig.get_path("platstdlib"), "lib-dynload")
    targets = [executable, *sorted(glob.glob(os.path.join(dynload, "*.so")))]
    if ldd is not None:
        try:
            out = subprocess.run([ldd, *targets], capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        found = {m.group(1) for m in _LDD_PATH.finditer(out)}
        found -= set(targets)
        if found:
            return sorted(found)
    return [os.path.join(d, "_") for d in _FALLBACK_LIBRARY_DIRS if os.path.isdir(d)]


def _under(path: str, parent: str) -> bool:
    return parent == "/" or path.startswith(parent.rstrip("/") + "/")


def _expose(path: str, binds: set[str], symlinks: dict[str, str], depth: int = 0) -> None:
    """Add what makes ``path`` resolve in the sandbox as on the host: each symlink met on the way
    (recreated) and the real file or directory at the end (bound)."""
    if depth > _MAX_LINKS:
        raise RootPlanError(f"too many symlinks resolving {path}")
    parts = [p for p in path.split("/") if p]
    current = "/"
    for index, part in enumerate(parts):
        step = os.path.join(current, part)
        if os.path.islink(step):
            target = os.readlink(step)
            symlinks[step] = target
            resolved = os.path.normpath(os.path.join(current, target))
            _expose(os.path.join(resolved, *parts[index + 1 :]), binds, symlinks, depth + 1)
            return
        current = step
    if os.path.exists(current):
        binds.add(current)
