"""Issue 3 acceptance on the real test models: each user failure reproduced, each guard's outcome shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )


def test_foreign_chat_markup_gives_empty_output_diagnosed(gemma3_path: Path) -> None:
    r = cli(
        "complete",
        "-m",
        str(gemma3_path),
        "--raw",
        "--prefix",
        "<s>[INST] Write a python function to add two numbers. [/INST]",
        "--temp",
        "0",
        "--json",
    )
    assert r.returncode == 0, r.stderr  # an empty generation is a result, with a warning
    d = json.loads(r.stdout)
    assert d["usage"]["completion_tokens"] == 0 and d["text"] == ""
    assert d["timings"]["generation_tokens_per_s"] is None
    [w] = [w for w in d["warnings"] if w["code"] == "empty_output"]
    assert "first sampled token was an end token" in w["message"]
    assert "llama-2 ([INST])" in w["message"]
    assert "— tok/s" in r.stderr


def test_chat_on_pretrained_model_warns_and_loop_is_stopped(gemma3_path: Path) -> None:
    r = cli(
        "chat",
        "-m",
        str(gemma3_path),
        "Write a SQL query that lists users",
        "--temp",
        "0",
        "-n",
        "512",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    codes = [w["code"] for w in d["warnings"]]
    assert "variant_mismatch" in codes
    assert "for chat use codegemma-7b-it" in d["warnings"][codes.index("variant_mismatch")]["message"]
    assert d["finish_reason"] == "repetition" and d["usage"]["completion_tokens"] < 512


def test_degenerate_fibonacci_ladder_stopped_within_300_tokens(gemma3_path: Path) -> None:
    prefix = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'
    r = cli(
        "complete", "-m", str(gemma3_path), "--prefix", prefix, "--temp", "0", "--max-tokens", "512", "--json"
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["finish_reason"] == "repetition"
    assert d["usage"]["completion_tokens"] <= 300
    assert "elif n == 2:" in d["text"]  # the sensible start is kept, the ladder is cut
    assert d["text"].count("elif") < 12


def test_over_long_fim_prompt_is_truncated_not_crashed(qwen_path: Path, tmp_path: Path) -> None:
    body = "".join(
        f"def handler_{i}(request):\n    return respond(request, code={i})\n\n" for i in range(120)
    )
    src = tmp_path / "big.py"
    src.write_text(body + "def main():\n    <CURSOR>\n\n" + body.replace("handler_", "after_"))
    r = cli(
        "complete",
        "-m",
        str(qwen_path),
        "--file",
        str(src),
        "--ctx-size",
        "512",
        "--temp",
        "0",
        "-n",
        "32",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    [w] = [w for w in d["warnings"] if w["code"] == "prompt_truncated"]
    assert "dropped" in w["message"] and d["usage"]["prompt_tokens"] <= 512


def test_chat_that_cannot_fit_is_a_clean_error(qwen_path: Path) -> None:
    r = cli("chat", "-m", str(qwen_path), "explain " * 3000, "--ctx-size", "512")
    assert r.returncode == 1
    assert "context is 512" in r.stderr and "Traceback" not in r.stderr
