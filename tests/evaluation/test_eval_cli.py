"""`cgstudio eval` end to end, in subprocesses: stdout carries only the document."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cgstudio.evaluation.datasets import get_tasks

_REPO_ROOT = Path(__file__).resolve().parents[2]
_ORACLE_DIR = _REPO_ROOT.parent / "shared" / "data" / "human-eval-infilling"
_ORACLE = _ORACLE_DIR / "HumanEval-SingleLineInfilling.jsonl.gz"
FIELDS = ["task_id", "prompt", "suffix", "canonical_solution", "test", "entry_point"]


def cli(
    *args: str, cwd: Path, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def test_tasks_jsonl_reproduces_the_official_single_line_set(tmp_path: Path) -> None:
    r = cli("eval", "tasks", "infill-single", "--jsonl", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 1033 and all(list(row) == FIELDS for row in rows)
    if not _ORACLE.is_file():
        pytest.skip(f"official file not found at {_ORACLE}")
    with gzip.open(_ORACLE, "rt", encoding="utf-8") as fh:
        official = [json.loads(line) for line in fh if line.strip()]
    assert len(official) == len(rows)
    for index in (0, 1, 500, 1032):
        assert {k: rows[index][k] for k in FIELDS} == {k: official[index][k] for k in FIELDS}
    assert [row["task_id"] for row in rows] == [row["task_id"] for row in official]


def test_tasks_sample_and_listing(tmp_path: Path) -> None:
    a = cli("eval", "tasks", "infill-multi", "--sample", "300", "--sample-seed", "3", "--jsonl", cwd=tmp_path)
    b = cli("eval", "tasks", "infill-multi", "--sample", "300", "--sample-seed", "3", cwd=tmp_path)
    assert a.returncode == b.returncode == 0
    ids = [json.loads(line)["task_id"] for line in a.stdout.splitlines()]
    assert len(ids) == 300 and ids == [line.split("\t")[0] for line in b.stdout.splitlines()]
    assert "300 tasks" in b.stderr


def test_canonical_humaneval_json(tmp_path: Path) -> None:
    r = cli("eval", "humaneval", "--canonical", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # fails if progress leaked onto stdout
    assert doc["pass_at_1"] == 1.0
    assert (doc["task"], doc["model"], doc["n_tasks"], doc["passed"]) == ("humaneval", "canonical", 164, 164)
    assert doc["failed"] == doc["timed_out"] == doc["error"] == 0
    assert set(doc) >= {"settings", "duration_s", "paper"}
    assert doc["containment"]["isolation"] == doc["isolation"]  # the report says what contained the tests
    assert set(doc["containment"]) >= {"filesystem", "user", "memory", "processes", "warnings"}
    assert doc["paper"]["pass_at_1"]["codegemma-7b-it"] == pytest.approx(0.561)
    report = Path(doc["report"])
    report = report if report.is_absolute() else tmp_path / report
    assert report.parent.parent == tmp_path / "eval-results" and "CodeGemma 7B-IT" in report.read_text()
    assert len((report.parent / "results.jsonl").read_text().splitlines()) == 164


def test_usage_errors(tmp_path: Path) -> None:
    for args in (
        ["eval", "humaneval-x"],
        ["eval", "humaneval", "--canonical", "--json", "--jsonl"],
        ["eval", "humaneval", "--base-url", "http://127.0.0.1:9/v1"],
        ["eval", "tasks", "nope"],
    ):
        r = cli(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stdout == ""
    help_text = cli("eval", "--help", cwd=tmp_path).stdout
    assert "tasks" in help_text and "run" in help_text


def _run(model: Path, tmp_path: Path, out: str, *extra: str) -> dict[str, Any]:
    # About 2 min on 2 idle cores: 20 completions of up to 128 tokens. Shared machines are far slower.
    r = cli(
        "eval",
        "infill-single",
        "--model",
        str(model),
        "--limit",
        "20",
        "--json",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / out),
        *extra,
        cwd=tmp_path,
        timeout=1700,
    )
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout), stderr=r.stderr)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_qwen_infill_single_20_then_resume_from_cache(qwen_path: Path, tmp_path: Path) -> None:
    first = _run(qwen_path, tmp_path, "first")
    assert (first["n_tasks"], first["generated"], first["cached"]) == (20, 20, 0)
    assert first["complete"] is False and first["style"] == "fim"
    assert 0.0 <= first["pass_at_1"] <= 1.0
    results = [json.loads(line) for line in (tmp_path / "first" / "results.jsonl").read_text().splitlines()]
    assert [r["task_id"] for r in results] == [t.task_id for t in get_tasks("infill-single")[:20]]
    assert sum(r["status"] == "passed" for r in results) == first["passed"]
    assert first["pass_at_1"] == pytest.approx(first["passed"] / 20)
    assert all(r["completion_tokens"] is not None and r["completion_tokens"] <= 128 for r in results)

    second = _run(qwen_path, tmp_path, "second")
    assert (second["generated"], second["cached"]) == (0, 20)
    assert "20 of 20 completions from the cache" in second["stderr"]
    assert (second["pass_at_1"], second["passed"]) == (first["pass_at_1"], first["passed"])
    assert second["settings"]["cache_key"] == first["settings"]["cache_key"]

    # The editor's guards: its own cache key (nothing reused), its own protocol line, and FIM
    # completions that end where they start repeating the suffix instead of running to 128 tokens.
    editor = _run(qwen_path, tmp_path, "editor", "--guards", "editor")
    assert (editor["generated"], editor["cached"]) == (20, 0)
    assert editor["settings"]["cache_key"] != first["settings"]["cache_key"]
    assert editor["settings"]["guards"]["fim_stop_at_suffix"] is True
    assert "**editor**" in (tmp_path / "editor" / "report.md").read_text()
    edited = [json.loads(line) for line in (tmp_path / "editor" / "results.jsonl").read_text().splitlines()]
    assert sum(r["completion_tokens"] for r in edited) < sum(r["completion_tokens"] for r in results)


def test_editor_guards_need_a_local_model(tmp_path: Path) -> None:
    r = cli("eval", "humaneval", "--canonical", "--guards", "editor", "--json", cwd=tmp_path)
    assert r.returncode != 0 and r.stdout == ""
    assert "--guards editor needs a local model" in r.stderr and "Traceback" not in r.stderr
