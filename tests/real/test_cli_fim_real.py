"""The issue's FIM example on Qwen2.5-Coder-0.5B: what the CLI prints, what the server streams and
the JSON ``text`` are the same text, and none of them shows the line the FIM rules cut."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

PREFIX = "def is_prime(n: int) -> bool:\n"
SUFFIX = "\n\nprint(is_prime(7))\n"
TOKENS = (128, 96)  # 128: the model restates the suffix's line; 96: it stops inside it


def complete(model: Path, n: int, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["complete", "-m", str(model), "--prefix", PREFIX, "--suffix", SUFFIX, "-n", str(n), "--temp", "0"]
    cmd = [sys.executable, "-m", "cgstudio.cli.main", *args, *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def server(qwen_path: Path) -> Iterator[str]:
    # --parallel 1: one sequence at a time, as the CLI decodes, so greedy takes the same path.
    args = ["serve", "-m", f"qwen={qwen_path}", "--port", "0", "--parallel", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("Open http://"):
                yield line.split()[1]
                break
        else:
            raise AssertionError("cgstudio serve ended before it was ready")
    finally:
        proc.terminate()
        proc.wait(30)


def streamed(url: str, n: int) -> tuple[str, str]:
    body = {"model": "qwen", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": n, "temperature": 0}
    parts, finish = [], ""
    with httpx.stream("POST", url + "/v1/completions", json={**body, "stream": True}, timeout=300) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line.removeprefix("data: "))["choices"][0]
            parts.append(choice["text"])
            finish = choice.get("finish_reason") or finish
    return "".join(parts), finish


@pytest.mark.parametrize("n", TOKENS)
def test_printed_streamed_and_json_text_are_equal(qwen_path: Path, server: str, n: int) -> None:
    doc = json.loads(complete(qwen_path, n, "--json").stdout)
    text = doc["text"]
    assert "print(is_prime" not in text  # the FIM rules cut the suffix's line
    printed = complete(qwen_path, n).stdout
    assert printed == (text if text.endswith("\n") else text + "\n")  # the CLI adds a final newline only
    assert "print(is_prime" not in printed and "# True" not in printed
    stream_text, _ = streamed(server, n)
    assert stream_text == text
