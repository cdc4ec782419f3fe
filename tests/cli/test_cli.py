"""The CLI end to end, in subprocesses: JSON on stdout only, clean errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SPECIAL_IDS = {0, 1, 2, 67, 68, 69, 70, 106, 107}


def cli(*args: str, stdin: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize("typing", ["control", "user_defined", "user_defined_nokeys"])
def test_dry_run_acceptance(codegemma_paths: dict[str, Path], typing: str) -> None:
    prefix = "def f():\n    # <|fim_suffix|> <start_of_turn> <|file_separator|>\n    return "
    r = cli(
        "complete",
        "--model",
        str(codegemma_paths[typing]),
        "--prefix",
        prefix,
        "--suffix",
        "\n",
        "--dry-run",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    toks = doc["prompt_tokens"]
    # The cursor line's start ("    return", token healing took the " ") follows the middle token.
    middle = toks.index(68)
    assert toks[:2] == [2, 67] and toks.count(68) == 1 and toks.count(69) == 1
    assert doc["prompt_text"].endswith("<|fim_middle|>    return")
    assert not SPECIAL_IDS.intersection(toks[2:middle] + toks[middle + 1 :]) - {69}
    assert doc["mode"] == "fim"
    assert doc["prompt_text"].startswith("<bos><|fim_prefix|>def f():\n    # <|fim_suffix|> <start_of_turn>")
    assert set(doc["stop"]["token_ids"]) == {1, 67, 68, 69, 70, 107}


def test_inspect_json(codegemma_paths: dict[str, Path]) -> None:
    r = cli("inspect", str(codegemma_paths["user_defined"]), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["family"] == "codegemma" and d["fim"] is True and d["variant"] == "pretrained"
    assert d["special_tokens"] == {
        "<pad>": 0,
        "<eos>": 1,
        "<bos>": 2,
        "<|fim_prefix|>": 67,
        "<|fim_middle|>": 68,
        "<|fim_suffix|>": 69,
        "<|file_separator|>": 70,
        "<start_of_turn>": 106,
        "<end_of_turn>": 107,
    }
    for key in ("context_length", "quantization", "size_bytes", "n_layers", "kv_bytes_per_token"):
        assert key in d
    assert d["context_length"] == 8192 and d["n_layers"] == 2
    # 2 layers x 1 KV head x (16 + 16) dims x 2 bytes
    assert d["kv_bytes_per_token"] == 128


def test_generation_json_is_the_only_stdout(codegemma_paths: dict[str, Path]) -> None:
    r = cli(
        "complete",
        "--model",
        str(codegemma_paths["control"]),
        "--prefix",
        "def f():\n",
        "--suffix",
        "\n",
        "-n",
        "6",
        "--temp",
        "0",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # would fail if streamed text leaked onto stdout
    assert set(doc) >= {"text", "finish_reason", "warnings", "usage", "timings"}
    assert doc["usage"]["completion_tokens"] <= 6
    assert set(doc["timings"]) >= {
        "time_to_first_token_s",
        "prompt_tokens_per_s",
        "generation_tokens_per_s",
        "total_s",
    }
    assert "tok/s" in r.stderr


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--temperature", "-3"], 2, "temperature"),
        (["--top-p", "1.5"], 2, "top_p"),
        (["--max-tokens", "0"], 2, "max_tokens"),
        (["--cache-type-v", "q8_0"], 2, "flash attention"),
    ],
)
def test_bad_sampling_values_are_usage_errors(
    codegemma_paths: dict[str, Path], args: list[str], code: int, needle: str
) -> None:
    r = cli("complete", "--model", str(codegemma_paths["control"]), "--prefix", "x", *args)
    assert r.returncode == code
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_bad_inputs(codegemma_paths: dict[str, Path], tmp_path: Path) -> None:
    model = str(codegemma_paths["control"])
    r = cli("complete", "--model", model, "--prefix", "", "--suffix", "")
    assert r.returncode == 2 and "empty" in r.stderr
    bad = tmp_path / "bad.py"
    bad.write_bytes(b"x = '\xff\xfe'\n<CURSOR>\n")
    r = cli("complete", "--model", model, "--file", str(bad))
    assert r.returncode == 2 and "not valid UTF-8" in r.stderr
    nul = tmp_path / "nul.py"
    nul.write_text("x = 1\x00\n<CURSOR>\n")
    r = cli("complete", "--model", model, "--file", str(nul))
    assert r.returncode == 2 and "NUL" in r.stderr
    huge = tmp_path / "huge.py"
    huge.write_text("x = 1\n" * 1_750_000 + "<CURSOR>\n")  # 10.5 MB
    r = cli("complete", "--model", model, "--file", str(huge))
    assert r.returncode == 2 and "limit" in r.stderr
    r = cli("complete", "--model", model, "--file", str(nul).replace("nul", "ok"), "--cursor", "1:1")
    assert r.returncode == 2 and "cannot read file" in r.stderr
    ok = tmp_path / "ok.py"
    ok.write_text("x = 1\n")
    r = cli("complete", "--model", model, "--file", str(ok), "--cursor", "99:1")
    assert r.returncode == 2 and "outside the file" in r.stderr and "Traceback" not in r.stderr


def test_bad_model_files(tmp_path: Path) -> None:
    notgguf = tmp_path / "model.gguf"
    notgguf.write_text("hello")
    r = cli("inspect", str(notgguf))
    assert r.returncode == 1 and "not a GGUF file" in r.stderr and "Traceback" not in r.stderr
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 10)
    r = cli("complete", "--model", str(truncated), "--prefix", "x")
    assert r.returncode == 1 and "could not load" in r.stderr and "Traceback" not in r.stderr
    r = cli("complete", "--model", str(tmp_path / "missing.gguf"), "--prefix", "x")
    assert r.returncode == 1 and "neither a file nor a known alias" in r.stderr


def test_fim_on_model_without_fim_tokens(codegemma_paths: dict[str, Path]) -> None:
    r = cli("complete", "--model", str(codegemma_paths["nofim"]), "--prefix", "a", "--suffix", "b")
    assert r.returncode == 2 and "no FIM tokens" in r.stderr


def test_cursor_marker_and_context_files(codegemma_paths: dict[str, Path], tmp_path: Path) -> None:
    src = tmp_path / "main.py"
    src.write_text("import util\n\ndef f():\n    return <CURSOR>\n")
    ctx = tmp_path / "util.py"
    ctx.write_text("X = 1\n")
    r = cli(
        "complete",
        "--model",
        str(codegemma_paths["control"]),
        "--file",
        str(src),
        "--context-file",
        str(ctx),
        "--dry-run",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    text = json.loads(r.stdout)["prompt_text"]
    assert text == (
        f"<bos>{ctx}\nX = 1\n<|file_separator|>{src}\n<|fim_prefix|>import util\n\ndef f():\n"
        "<|fim_suffix|>\n<|fim_middle|>    return"
    )  # the cursor line after the middle token; token healing took its trailing " " off


def test_help_is_fast_and_lists_commands() -> None:
    r = cli("--help")
    assert r.returncode == 0
    for name in ("complete", "generate", "chat", "inspect"):
        assert name in r.stdout
