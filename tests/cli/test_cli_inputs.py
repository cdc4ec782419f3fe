"""CLI inputs that used to end in `internal error (...)`: unbounded files and non-UTF-8 argv (issue 12).

``--file /dev/zero`` read until MemoryError; a ``--prefix`` that is not UTF-8 (Python passes argv
bytes through as lone surrogates) failed with UnicodeEncodeError when it reached the tokenizer.
Both are usage errors now (exit 2) with a message that says what to do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cgstudio.core.settings import MAX_INPUT_BYTES

BAD = b"def f(\xff):"  # not UTF-8


def cli(*args: str | bytes, timeout: int = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "LC_ALL": "C.UTF-8"},
    )


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("flag", ["--file", "--context-file"])
def test_dev_zero_is_refused_not_read_until_memory_runs_out(
    codegemma_paths: dict[str, Path], flag: str
) -> None:
    extra = ["--prefix", "x"] if flag == "--context-file" else []
    r = cli("complete", "-m", str(codegemma_paths["control"]), flag, "/dev/zero", *extra, "--dry-run")
    assert r.returncode == 2, r.stderr
    assert "/dev/zero is not a regular file" in r.stderr and "internal error" not in r.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_as_input_file_is_refused_not_waited_on(
    codegemma_paths: dict[str, Path], tmp_path: Path
) -> None:
    fifo = tmp_path / "in.py"
    os.mkfifo(fifo)
    r = cli("complete", "-m", str(codegemma_paths["control"]), "--file", str(fifo), "--cursor", "1:1")
    assert r.returncode == 2 and "not a regular file" in r.stderr, r.stderr


def test_input_files_are_capped_at_the_server_request_limit(
    codegemma_paths: dict[str, Path], tmp_path: Path
) -> None:
    assert MAX_INPUT_BYTES == 8 << 20
    model = str(codegemma_paths["control"])
    big = tmp_path / "big.py"
    big.write_bytes(b"#" * (MAX_INPUT_BYTES + 1))
    r = cli("complete", "-m", model, "--file", str(big), "--cursor", "1:1")
    assert r.returncode == 2 and "limit of 8 MiB" in r.stderr, r.stderr
    # context files count against the same total: two files of 5 MiB are over it together
    half = tmp_path / "half.py"
    half.write_bytes(b"#" * (5 << 20))
    r = cli(
        "complete", "-m", model, "--prefix", "x", "--context-file", str(half), "--context-file", str(half)
    )
    assert r.returncode == 2 and "limit of 8 MiB" in r.stderr, r.stderr
    assert "internal error" not in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["complete", "--prefix", BAD],
        ["complete", "--prefix", "x", "--suffix", BAD],
        ["complete", "--prefix", "x", "--path", BAD],
        ["complete", "--prefix", "x", "--stop", BAD],
        ["generate", BAD],
        ["generate", "a function", "--language", BAD],
        ["chat", BAD],
        ["chat", "hi", "--system", BAD],
    ],
    ids=["prefix", "suffix", "path", "stop", "request", "language", "message", "system"],
)
def test_non_utf8_text_in_argv_is_a_usage_error(
    codegemma_paths: dict[str, Path], args: list[str | bytes]
) -> None:
    cmd, *rest = args
    r = cli(cmd, "-m", str(codegemma_paths["control"]), *rest, "--dry-run")
    assert r.returncode == 2, r.stderr
    assert "is not valid UTF-8 (byte 0xff" in r.stderr and "internal error" not in r.stderr


def test_a_context_file_with_a_non_utf8_name_is_a_usage_error(
    codegemma_paths: dict[str, Path], tmp_path: Path
) -> None:
    name = os.fsencode(tmp_path) + b"/ctx-\xff.py"
    with open(name, "wb") as fh:
        fh.write(b"X = 1\n")
    r = cli("complete", "-m", str(codegemma_paths["control"]), "--prefix", "x", "--context-file", name)
    assert r.returncode == 2 and "context file name is not valid UTF-8" in r.stderr, r.stderr
