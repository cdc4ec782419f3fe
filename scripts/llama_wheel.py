#!/usr/bin/env python3
"""Install llama-cpp-python into a venv from a wheel built once per exact build flag set.

The wheel is kept in a user cache, ``$CGSTUDIO_WHEEL_CACHE`` or
``${XDG_CACHE_HOME:-~/.cache}/cgstudio/wheels/<version>-<key>/``, where ``key`` is a hash of
llama-cpp-python's version, the exact ``CMAKE_ARGS``, the text of the CMake hook below, the
platform and the machine. A second clone or a ``make clean`` reuses it in seconds; a different
flag set has a different key, so it can never pick up the wrong wheel. pip never reuses a
wheel of its own cache (``--no-cache-dir``, ``--no-binary``): pip's cache is keyed by version
only, so it would hand back a wheel built with other flags (a native build with AMX, say).

The build compiles only what cgstudio loads: libllama and ggml (its CPU or GPU backend). It
skips the multimodal library (``LLAVA_BUILD=OFF``: libmtmd, which llama_cpp imports only for
its multimodal chat handlers) and llama.cpp's ``common`` library (chat parsers, JSON schema,
HTTP client: nothing the Python bindings load). llama-cpp-python's CMakeLists forces
``LLAMA_BUILD_COMMON`` on, so ``scripts/llama_no_common.cmake`` turns it off again right
after llama.cpp's ``project()`` (``CMAKE_PROJECT_llama.cpp_INCLUDE``). Progress is ninja's
``[n/N]`` step count, read from ``pip -v``; the full log is kept next to the wheel (in the
build folder when the build fails).

Usage: ``python scripts/llama_wheel.py --python .venv/bin/python --version 0.3.36``
(``--show`` prints the cache folder and the flags and does nothing else). Stdlib only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_cmake_args  # a sibling script, found through the line above

# Turns llama.cpp's common library off: see the module docstring.
COMMON_HOOK = Path(__file__).resolve().parent / "llama_no_common.cmake"
STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]\s")
# In the venv: "<version> <CMAKE_ARGS>" (read by `cgstudio doctor`), then the cache key.
STAMP_NAME = ".llama-build-args"
PHASE = re.compile(r"^\s*\*\*\* (.+)$")


def build_spec(version: str, cmake_args: str, hook: Path) -> dict[str, object]:
    """Everything that changes the built binary, the cache key's input.

    The hook counts by its text, not its path, so clones in other folders share the wheel.
    """
    return {
        "package": "llama-cpp-python",
        "version": version,
        "cmake_args": cmake_args,
        "cmake_hook_sha256": hashlib.sha256(hook.read_bytes()).hexdigest(),
        "platform": sys.platform,
        "machine": platform.machine(),
    }


def cache_key(spec: dict[str, object]) -> str:
    blob = json.dumps(spec, sort_keys=True).encode()
    return f"{spec['version']}-{hashlib.sha256(blob).hexdigest()[:16]}"


def cache_root() -> Path:
    explicit = os.environ.get("CGSTUDIO_WHEEL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cgstudio" / "wheels"


def cached_wheel(folder: Path, version: str) -> Path | None:
    """The one wheel of this version in ``folder``, else None (missing or ambiguous)."""
    wheels = sorted(folder.glob(f"llama_cpp_python-{version}-*.whl")) if folder.is_dir() else []
    return wheels[0] if len(wheels) == 1 else None


def progress_lines(lines: Iterable[str]) -> Iterator[tuple[int, int, str]]:
    """Ninja's ``[n/N] command`` lines as (n, N, short name of what is built)."""
    for line in lines:
        match = STEP.match(line)
        if not match:
            continue
        out = re.search(r"\s-o\s+(\S+)", line)
        what = Path(out.group(1)).name if out else line[match.end() :].strip()[:60]
        yield int(match.group(1)), int(match.group(2)), what


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


class Progress:
    """One line redrawn in place on a terminal; a line per 10 % step in a log."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.shown = -1
        self.drawing = False  # a step line is on screen, not yet ended (terminal)

    def step(self, n: int, total: int, what: str) -> None:
        pct = 100 * n // max(total, 1)
        text = f"  [{n}/{total}] {pct:3d}%  {_clock(time.monotonic() - self.start)}  {what}"
        if self.tty:
            self._write("\r" + text[:100].ljust(100))
            self.drawing = True
        elif pct // 10 > self.shown or n == total:
            self.shown = pct // 10
            self._write(text + "\n")

    def note(self, text: str) -> None:
        """A phase line from scikit-build-core (configuring, building, making the wheel)."""
        self.done()
        self._write(f"  {text}\n")

    def done(self) -> None:
        if self.drawing:
            self._write("\n")
            self.drawing = False

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def hooked_args(cmake_args: str, hook: Path) -> str:
    """The CMAKE_ARGS pip gets: ours plus the hook (scikit-build-core splits them with shlex)."""
    return f"{cmake_args} -DCMAKE_PROJECT_llama.cpp_INCLUDE={shlex.quote(str(hook))}".strip()


def build_wheel(python: str, version: str, cmake_args: str, dest: Path) -> Path:
    """Build the wheel into ``dest`` (a fresh folder) with pip, showing ninja's progress."""
    log_path = dest / "build.log"
    cmd = [python, "-m", "pip", "wheel", "-v", "--no-deps", "--no-cache-dir"]
    cmd += ["--no-binary", "llama-cpp-python", "-w", str(dest)]
    cmd.append(f"llama-cpp-python=={version}")
    env = dict(os.environ, CMAKE_ARGS=cmake_args)
    progress = Progress()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            phase = PHASE.match(line)
            if phase:
                progress.note(phase.group(1))
            for n, total, what in progress_lines([line]):
                progress.step(n, total, what)
        rc = proc.wait()
    progress.done()
    wheel = cached_wheel(dest, version)
    if rc != 0 or wheel is None:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        sys.stderr.write("\n".join(tail) + f"\nllama-cpp-python build failed (exit {rc}); log: {log_path}\n")
        raise SystemExit(rc or 1)
    return wheel


def install_wheel(python: str, wheel: Path) -> None:
    """Install exactly this wheel (replacing any other build of the same version), then its deps."""
    pip = [python, "-m", "pip", "install", "-q", "--no-cache-dir"]
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True)
    subprocess.run([*pip, str(wheel)], check=True)


def stamp_text(version: str, cmake_args: str, key: str) -> str:
    return f"{version} {cmake_args}\n{key}\n"


def is_installed(python: str, stamp: Path, text: str, version: str) -> bool:
    """Whether the venv already holds this build (its stamp matches and llama_cpp imports)."""
    if not stamp.is_file() or stamp.read_text(encoding="utf-8") != text:
        return False
    check = f"import llama_cpp, sys; sys.exit(llama_cpp.__version__ != {version!r})"
    return subprocess.run([python, "-c", check], capture_output=True).returncode == 0


def ensure(python: str, version: str, cmake_args: str, hook: Path = COMMON_HOOK) -> Path:
    """Install the wheel for these flags into ``python``'s venv, building it once if needed."""
    spec = build_spec(version, cmake_args, hook)
    key = cache_key(spec)
    prefix = subprocess.run([python, "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True)
    stamp = Path(prefix.stdout.strip()) / STAMP_NAME
    folder = cache_root() / key
    text = stamp_text(version, cmake_args, key)
    if is_installed(python, stamp, text, version):
        print(f"llama-cpp-python {version} already installed from {folder}")
        return folder
    wheel = cached_wheel(folder, version)
    if wheel is None:
        folder.parent.mkdir(parents=True, exist_ok=True)
        print(f"Building llama-cpp-python {version} (about 5 minutes on 2 cores) with: {cmake_args}")
        print(f"  and {hook.name} (no llama.cpp common library); the wheel is kept in {folder}")
        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
        try:
            build_wheel(python, version, hooked_args(cmake_args, hook), scratch)
            (scratch / "build-spec.json").write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
            if folder.exists():  # an incomplete folder from an interrupted run
                shutil.rmtree(folder)
            scratch.rename(folder)  # atomic: a folder with a wheel in it is always complete
        finally:
            if scratch.exists() and cached_wheel(scratch, version) is None:
                print(f"  build folder kept for its log: {scratch}", file=sys.stderr)
        wheel = cached_wheel(folder, version)
        assert wheel is not None
        print(f"Built in {_clock(time.monotonic() - started)}: {wheel}")
    else:
        print(f"Reusing the cached llama-cpp-python wheel: {wheel}")
    install_wheel(python, wheel)
    stamp.write_text(text, encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="the venv's python (default: this one)")
    parser.add_argument("--version", required=True, help="llama-cpp-python version, e.g. 0.3.36")
    parser.add_argument("--show", action="store_true", help="print the cache folder and flags, do nothing")
    args = parser.parse_args(argv)
    cmake_args = llama_cmake_args.current_args()
    if args.show:
        key = cache_key(build_spec(args.version, cmake_args, COMMON_HOOK))
        print(f"{cache_root() / key}\nCMAKE_ARGS={hooked_args(cmake_args, COMMON_HOOK)}")
        return 0
    ensure(args.python, args.version, cmake_args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
