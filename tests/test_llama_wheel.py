"""scripts/llama_wheel.py: one build per exact flag set, reused from the user cache, never mixed up.

A fake python stands in for the venv's: it answers ``sys.prefix``, the llama_cpp import check
and ``pip wheel``/``pip install``, and logs each pip call, so the tests count builds and installs.
"""

from __future__ import annotations

import importlib.util
import io
import stat
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!{python}
import os, sys
from pathlib import Path

prefix = Path(os.environ["FAKE_PREFIX"])
args = sys.argv[1:]
if args[:1] == ["-c"]:
    if "sys.prefix" in args[1]:
        print(prefix)
        sys.exit(0)
    sys.exit(0 if (prefix / "installed").exists() else 1)
with open(os.environ["FAKE_CALLS"], "a") as log:
    log.write(" ".join(args[2:]) + "\\n")
if args[2] == "wheel":
    if os.environ.get("FAKE_FAIL"):
        print("error: compiler exploded")
        sys.exit(1)
    print("  *** Configuring CMake...")
    for n in range(1, 5):
        print(f"  [{{n}}/4] g++ -O3 -o ggml/src/part{{n}}.cpp.o -c part{{n}}.cpp")
    dest = Path(args[args.index("-w") + 1])
    (dest / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl").write_text(os.environ["CMAKE_ARGS"])
elif args[2] == "install":
    (prefix / "installed").write_text(args[-1])
"""


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llama_wheel", REPO / "scripts" / "llama_wheel.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lw = _load()


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    prefix = tmp_path / "venv"
    prefix.mkdir()
    calls = tmp_path / "calls.log"
    calls.touch()
    monkeypatch.setenv("FAKE_PREFIX", str(prefix))
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    monkeypatch.setenv("CGSTUDIO_WHEEL_CACHE", str(tmp_path / "cache"))
    return {"python": python, "prefix": prefix, "calls": calls, "cache": tmp_path / "cache"}


def _calls(fake: dict[str, Path], verb: str) -> list[str]:
    return [line for line in fake["calls"].read_text().splitlines() if line.startswith(verb)]


def _new_venv(fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """What a second clone or `make clean` gives: an empty venv, the user cache untouched."""
    prefix = fake["prefix"].parent / name
    prefix.mkdir()
    monkeypatch.setenv("FAKE_PREFIX", str(prefix))


def test_key_changes_with_every_input(tmp_path: Path) -> None:
    hook = lw.COMMON_HOOK
    base = lw.cache_key(lw.build_spec("0.3.36", "-DGGML_AVX=ON", hook))
    assert base.startswith("0.3.36-")
    moved = tmp_path / "elsewhere.cmake"  # the same hook in another clone: same key
    moved.write_bytes(hook.read_bytes())
    assert base == lw.cache_key(lw.build_spec("0.3.36", "-DGGML_AVX=ON", moved))
    edited = tmp_path / "edited.cmake"
    edited.write_text(hook.read_text() + "set(GGML_OPENMP OFF)\n")
    others = {
        lw.cache_key(lw.build_spec("0.3.35", "-DGGML_AVX=ON", hook)),
        lw.cache_key(lw.build_spec("0.3.36", "-DGGML_AVX=OFF", hook)),
        lw.cache_key(lw.build_spec("0.3.36", "-DGGML_AVX=ON -DGGML_CUDA=ON", hook)),
        lw.cache_key(lw.build_spec("0.3.36", "-DGGML_AVX=ON", edited)),
    }
    assert base not in others and len(others) == 4


def test_trimmed_flags_are_part_of_the_cmake_args() -> None:
    import llama_cmake_args  # on sys.path once llama_wheel is loaded

    args = llama_cmake_args.cmake_args({"avx2"}, "x86_64")
    assert "-DLLAVA_BUILD=OFF" in args and "-DGGML_AMX_INT8=OFF" in args
    assert "LLAMA_BUILD_COMMON OFF" in lw.COMMON_HOOK.read_text()
    hooked = lw.hooked_args("-DGGML_AVX=ON", Path("/a b/hook.cmake"))
    assert hooked == "-DGGML_AVX=ON -DCMAKE_PROJECT_llama.cpp_INCLUDE='/a b/hook.cmake'"


def test_progress_lines_name_the_object() -> None:
    lines = [
        "  *** Building project with Ninja...",
        "  [3/193] /usr/bin/g++ -DGGML_BUILD -O3 -o vendor/llama.cpp/ggml/src/ggml.c.o -c /x/ggml.c",
        "  [193/193] : && /usr/bin/g++ -shared -o bin/libllama.so a.o b.o",
    ]
    assert list(lw.progress_lines(lines)) == [(3, 193, "ggml.c.o"), (193, 193, "libllama.so")]


def test_progress_in_a_log_is_one_line_per_tenth() -> None:
    out = io.StringIO()
    progress = lw.Progress(out)
    for n in range(1, 194):
        progress.step(n, 193, f"f{n}.o")
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0 %, 10 %, ..., 100 %
    assert lines[-1].startswith("  [193/193] 100%")


def test_builds_once_then_a_new_venv_reuses_the_cached_wheel(
    fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = lw.ensure(str(fake["python"]), "0.3.36", "-DGGML_AVX=ON")
    assert len(_calls(fake, "wheel")) == 1
    wheel = lw.cached_wheel(folder, "0.3.36")
    assert wheel is not None and wheel.read_text().startswith(
        "-DGGML_AVX=ON -DCMAKE_PROJECT_llama.cpp_INCLUDE="
    )
    assert (folder / "build.log").is_file() and (folder / "build-spec.json").is_file()
    assert "[4/4] 100%" in capsys.readouterr().out
    stamp = (fake["prefix"] / ".llama-build-args").read_text()
    assert stamp.splitlines()[0] == "0.3.36 -DGGML_AVX=ON"  # what `cgstudio doctor` parses

    _new_venv(fake, monkeypatch, "venv2")
    lw.ensure(str(fake["python"]), "0.3.36", "-DGGML_AVX=ON")
    assert len(_calls(fake, "wheel")) == 1  # not built again
    installs = _calls(fake, "install")
    assert installs[-1].endswith(str(wheel)) and "--force-reinstall" in installs[-2]
    assert "Reusing the cached llama-cpp-python wheel" in capsys.readouterr().out


def test_an_installed_build_is_left_alone(fake: dict[str, Path]) -> None:
    lw.ensure(str(fake["python"]), "0.3.36", "-DGGML_AVX=ON")
    before = fake["calls"].read_text()
    lw.ensure(str(fake["python"]), "0.3.36", "-DGGML_AVX=ON")
    assert fake["calls"].read_text() == before  # no pip call at all


def test_other_flags_never_pick_up_the_cached_wheel(fake: dict[str, Path]) -> None:
    first = lw.ensure(str(fake["python"]), "0.3.36", "-DGGML_AVX=ON")
    second = lw.ensure(str(fake["python"]), "0.3.36", "-DGGML_AVX=OFF")
    assert first != second and len(_calls(fake, "wheel")) == 2
    wheel = lw.cached_wheel(second, "0.3.36")
    assert wheel is not None and wheel.read_text().startswith("-DGGML_AVX=OFF ")
    assert _calls(fake, "install")[-1].endswith(str(wheel))


def test_a_failed_build_caches_nothing(fake: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL", "1")
    with pytest.raises(SystemExit):
        lw.ensure(str(fake["python"]), "0.3.36", "-DGGML_AVX=ON")
    key = lw.cache_key(lw.build_spec("0.3.36", "-DGGML_AVX=ON", lw.COMMON_HOOK))
    assert not (fake["cache"] / key).exists()
    assert not _calls(fake, "install")
    monkeypatch.delenv("FAKE_FAIL")
    lw.ensure(str(fake["python"]), "0.3.36", "-DGGML_AVX=ON")
    assert len(_calls(fake, "wheel")) == 2  # the next run builds again
