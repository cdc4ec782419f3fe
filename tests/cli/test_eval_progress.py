"""The eval progress display: the model load and the first completion are phases from the start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cgstudio.cli.progress import FIRST, _LineProgress, _RichProgress


def test_log_lines_name_each_phase_and_the_first_completion_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    p = _LineProgress("humaneval", cold_start=True)
    p.phase("loading qwen")
    assert capsys.readouterr().err.endswith("humaneval: loading qwen…\n")
    sink = p("humaneval qwen")
    sink.start(3, 0)
    err = capsys.readouterr().err
    assert "loading qwen: done in" in err and "start: 0 of 3" in err and f"{FIRST}…" in err
    sink.generated(False)  # the first new completion: said now, not after 30 s
    err = capsys.readouterr().err
    assert f"{FIRST}: done in" in err and "generated 1/3" in err
    sink.generated(False)
    assert capsys.readouterr().err == ""  # later ones wait for the 30 s tick
    sink.stop()
    p.stop()  # the CLI stops it again after the run: said once
    assert capsys.readouterr().err.count("generated 2/3") == 1


def test_a_canonical_run_has_no_cold_start_phase(capsys: pytest.CaptureFixture[str]) -> None:
    p = _LineProgress("humaneval")
    p("humaneval canonical").start(2, 0)
    assert FIRST not in capsys.readouterr().err


def test_the_bar_shows_phases_before_the_counts() -> None:
    p = _RichProgress("humaneval", cold_start=True)
    p.phase("loading qwen")
    assert [t.description for t in p.progress.tasks] == ["loading qwen"] and p.running
    p("humaneval qwen").start(2, 0)
    assert [t.description for t in p.progress.tasks] == [FIRST, "humaneval qwen: generate", "test (passed 0)"]
    p.generated(False)
    assert next(t.description for t in p.progress.tasks) == "humaneval qwen: generate"
    p.stop()
    p.stop()
    assert not p.running


def test_eval_run_says_loading_before_anything_else(codegemma_paths: dict[str, Path], tmp_path: Path) -> None:
    model, cache, out = str(codegemma_paths["control"]), str(tmp_path / "cache"), str(tmp_path / "out")
    args = ["eval", "run", "humaneval", "--limit", "1", "-m", model, "--cache-dir", cache, "--out", out]
    r = subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    err = r.stderr
    assert err.index("loading codegemma-2b-control…") < err.index("start: 0 of 1")
    assert err.index(f"{FIRST}…") < err.index(f"{FIRST}: done in") < err.index("generated 1/1")
