#!/usr/bin/env python3
"""Build llama.cpp's own ``llama-server`` from the llama.cpp that llama-cpp-python vendors.

The bench compares cgstudio with it side by side (``cgstudio bench --peer llama-server=PATH``):
same llama.cpp commit, same CPU flags as cgstudio's wheel (``scripts/llama_cmake_args.py``), so a
difference in the figures is the server's, not the kernels'.

The sdist comes from the package index through pip (``pip download``), is checked against the
pinned sha256 below, and only its ``vendor/llama.cpp`` tree is unpacked. The binary is kept in
``${XDG_CACHE_HOME:-~/.cache}/cgstudio/peer/<version>-<key>/llama-server``, where ``key`` hashes the
exact CMake flags, so a second ``make peer`` is instant and other flags never reuse it. The web UI
is not built and nothing is downloaded by CMake (``LLAMA_BUILD_UI=OFF``,
``LLAMA_USE_PREBUILT_UI=OFF``): the server still answers its HTTP API.

Usage: ``python scripts/llama_server_peer.py --python .venv/bin/python`` prints the binary's path
on its last line (``--show`` prints where it would be and exits). Stdlib only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llama_cmake_args  # a sibling script, found through the line above
import llama_wheel

VERSION = "0.3.36"
# sha256 of llama_cpp_python-0.3.36.tar.gz as published on PyPI (checked before unpacking).
SDIST_SHA256 = {"0.3.36": "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"}
VENDOR = "vendor/llama.cpp/"
# Only the server and what it links; no UI assets, no network at build time, one static binary.
SERVER_ARGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_COMMON=ON",
    "-DLLAMA_BUILD_TOOLS=ON",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
]


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cgstudio" / "peer"


def cmake_flags() -> list[str]:
    """cgstudio's CPU flags (the wheel's trims dropped: they name llama-cpp-python options)."""
    cpu = [a for a in llama_cmake_args.current_args().split() if a not in llama_cmake_args.TRIM]
    return [*SERVER_ARGS, *cpu]


def folder_for(version: str, flags: list[str]) -> Path:
    spec = {"version": version, "flags": flags, "platform": sys.platform, "machine": platform.machine()}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return cache_root() / f"{version}-{key}"


def download_sdist(python: str, version: str, into: Path) -> Path:
    """The sdist, its hash checked by pip (``--require-hashes``, before pip runs any of its code to
    read its metadata) and again here."""
    want = SDIST_SHA256.get(version)
    if want is None:
        raise SystemExit(f"no pinned sha256 for llama-cpp-python {version}: add it to SDIST_SHA256")
    pinned = into / "peer-requirements.txt"
    pinned.write_text(f"llama-cpp-python=={version} --hash=sha256:{want}\n")
    cmd = [python, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--no-cache-dir"]
    try:
        subprocess.run([*cmd, "--require-hashes", "-r", str(pinned), "-d", str(into)], check=True)
    except subprocess.CalledProcessError as exc:
        raise SystemExit(
            f"pip could not download or verify llama-cpp-python {version} (exit {exc.returncode}): "
            "is the package index reachable, and does it serve the pinned sdist?"
        ) from None
    found = sorted(into.glob(f"llama_cpp_python-{version}.tar.gz"))
    if not found:
        raise SystemExit(f"pip download gave no llama_cpp_python-{version}.tar.gz in {into}")
    sdist = found[0]
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != want:
        raise SystemExit(f"{sdist.name}: sha256 {digest}, expected {want}; refusing to build it")
    return sdist


def unpack_vendor(sdist: Path, into: Path) -> Path:
    """Only ``vendor/llama.cpp``; members that leave the folder or are links are refused."""
    root = into.resolve()
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            parts = m.name.split("/", 1)
            if len(parts) < 2 or not parts[1].startswith(VENDOR):
                continue
            target = (root / m.name).resolve()
            if not target.is_relative_to(root) or m.issym() or m.islnk() or m.isdev():
                raise SystemExit(f"{sdist.name}: refusing member {m.name!r}")
            members.append(m)
        if hasattr(tarfile, "data_filter"):  # and checked again by tarfile where it can
            tar.extractall(root, members=members, filter="data")
        else:
            tar.extractall(root, members=members)
    found = list(root.glob(f"*/{VENDOR}"))
    if len(found) != 1:
        raise SystemExit(f"{sdist.name}: no {VENDOR} tree inside")
    return found[0]


def build(source: Path, work: Path, flags: list[str], jobs: int) -> Path:
    out = work / "build"
    progress = llama_wheel.Progress()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(
        ["cmake", "-S", str(source), "-B", str(out), *gen, *flags], check=True, stdout=subprocess.DEVNULL
    )
    cmd = ["cmake", "--build", str(out), "--target", "llama-server", "-j", str(jobs)]
    log = work / "build.log"
    with (
        log.open("w") as fh,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            for n, total, what in llama_wheel.progress_lines([line]):
                progress.step(n, total, what)
        rc = proc.wait()
    progress.done()
    if rc:
        raise SystemExit(f"building llama-server failed (exit {rc}); the log is {log}")
    binary = out / "bin" / "llama-server"
    if not binary.is_file():
        raise SystemExit(f"the build ended without {binary}")
    return binary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the interpreter whose pip downloads")
    parser.add_argument("--version", default=VERSION, help="llama-cpp-python version")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--show", action="store_true", help="print where the binary goes and stop")
    args = parser.parse_args()
    flags = cmake_flags()
    folder = folder_for(args.version, flags)
    binary = folder / "llama-server"
    if args.show or binary.is_file():
        if binary.is_file():
            print(f"llama-server for llama-cpp-python {args.version} is cached")
        print(binary)
        return 0
    start = time.monotonic()
    print(f"building llama-server from llama-cpp-python {args.version}'s llama.cpp: {' '.join(flags)}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix="build-") as tmp:
        work = Path(tmp)
        source = unpack_vendor(download_sdist(args.python, args.version, work), work / "src")
        built = build(source, work, flags, args.jobs)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, binary)
    minutes, seconds = divmod(int(time.monotonic() - start), 60)
    print(f"built in {minutes}m{seconds:02d}s")
    print(binary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
