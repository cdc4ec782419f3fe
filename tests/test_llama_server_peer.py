"""scripts/llama_server_peer.py (``make peer``): a pinned sdist, a safe unpack, a cache keyed by flags.

The build itself (minutes of C++) is not run here; BENCHMARKS.md records a real one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load() -> ModuleType:
    sys.path.insert(0, str(REPO / "scripts"))
    spec = importlib.util.spec_from_file_location(
        "llama_server_peer", REPO / "scripts" / "llama_server_peer.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peer = _load()


def _sdist(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def test_only_the_vendored_llama_cpp_is_unpacked(tmp_path: Path) -> None:
    sdist = _sdist(
        tmp_path / "s.tar.gz",
        {
            "llama_cpp_python-0.3.36/vendor/llama.cpp/CMakeLists.txt": b"project(llama.cpp)\n",
            "llama_cpp_python-0.3.36/llama_cpp/__init__.py": b"",
        },
    )
    source = peer.unpack_vendor(sdist, tmp_path / "src")
    assert (source / "CMakeLists.txt").read_bytes() == b"project(llama.cpp)\n"
    assert not (tmp_path / "src" / "llama_cpp_python-0.3.36" / "llama_cpp").exists()


@pytest.mark.parametrize(
    ("members", "links"),
    [
        ({"x/vendor/llama.cpp/../../../../escape.txt": b"no"}, None),
        ({"x/vendor/llama.cpp/CMakeLists.txt": b""}, {"x/vendor/llama.cpp/evil": "/etc/passwd"}),
    ],
)
def test_a_member_that_leaves_the_folder_or_links_is_refused(
    tmp_path: Path, members: dict[str, bytes], links: dict[str, str] | None
) -> None:
    sdist = _sdist(tmp_path / "s.tar.gz", members, links)
    with pytest.raises(SystemExit, match="refusing member"):
        peer.unpack_vendor(sdist, tmp_path / "src")
    assert not (tmp_path / "escape.txt").exists()


def test_a_sdist_with_another_hash_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_pip(cmd: list[str], check: bool) -> None:
        (tmp_path / "dl" / "llama_cpp_python-0.3.36.tar.gz").write_bytes(b"not the published sdist")

    (tmp_path / "dl").mkdir()
    monkeypatch.setattr(peer.subprocess, "run", fake_pip)
    with pytest.raises(SystemExit, match=r"sha256 .* expected 832db069"):
        peer.download_sdist(sys.executable, "0.3.36", tmp_path / "dl")
    assert hashlib.sha256(b"not the published sdist").hexdigest() != peer.SDIST_SHA256["0.3.36"]


def test_the_cache_folder_is_keyed_by_the_flags() -> None:
    flags = peer.cmake_flags()
    assert "-DLLAMA_BUILD_SERVER=ON" in flags and "-DLLAMA_USE_PREBUILT_UI=OFF" in flags
    assert not any(f.startswith("-DLLAVA_BUILD") for f in flags)  # a llama-cpp-python option only
    assert peer.folder_for("0.3.36", flags) == peer.folder_for("0.3.36", list(flags))
    assert peer.folder_for("0.3.36", flags) != peer.folder_for("0.3.36", [*flags, "-DGGML_AVX2=OFF"])
