"""Real small models: FIM and chat on Qwen2.5-Coder-0.5B, completion and failures on gemma3-270m."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cgstudio
from cgstudio.generation.request import GenerationRequest
from cgstudio.session.model import CodeModel

pytestmark = pytest.mark.slow

IS_PRIME_PREFIX = 'def is_prime(n: int) -> bool:\n    """Return True if n is a prime number."""\n'
IS_PRIME_SUFFIX = '\n\nif __name__ == "__main__":\n    print([p for p in range(20) if is_prime(p)])\n'


@pytest.fixture(scope="module")
def qwen(qwen_path: Path) -> CodeModel:
    m = cgstudio.load(str(qwen_path), n_ctx=4096)
    yield m
    m.close()


@pytest.fixture(scope="module")
def gemma3(gemma3_path: Path) -> CodeModel:
    m = cgstudio.load(str(gemma3_path), n_ctx=2048)
    yield m
    m.close()


def test_qwen_detection(qwen: CodeModel) -> None:
    assert qwen.family == "qwen2.5-coder"
    assert qwen.variant.variant == "instruction-tuned"
    assert qwen.fim_capable


def test_qwen_fim_fills_a_sensible_middle(qwen: CodeModel) -> None:
    r = qwen.complete(IS_PRIME_PREFIX, IS_PRIME_SUFFIX, sampling={"temperature": 0, "max_tokens": 160})
    assert "return" in r.text and "%" in r.text  # a divisibility test
    assert "<|" not in r.text  # no leaked control tokens
    assert r.timings.time_to_first_token_s is not None and r.timings.time_to_first_token_s > 0
    assert r.usage.completion_tokens >= 2 and r.timings.generation_tokens_per_s is not None
    namespace: dict[str, object] = {}
    exec(compile(IS_PRIME_PREFIX + r.text, "<fim>", "exec"), namespace)
    is_prime = namespace["is_prime"]
    assert [p for p in range(20) if is_prime(p)] == [2, 3, 5, 7, 11, 13, 17, 19]  # type: ignore[operator]


def test_qwen_chat_answers_with_code(qwen: CodeModel) -> None:
    r = qwen.chat(
        [{"role": "user", "content": "Write a Python function that reverses a string."}],
        sampling={"temperature": 0, "max_tokens": 200},
    )
    assert "```" in r.text and "def " in r.text
    assert "<|im_end|>" not in r.text
    assert not r.warnings or all(w.code != "variant_mismatch" for w in r.warnings)


def test_qwen_generate_extracts_code(qwen: CodeModel) -> None:
    r = qwen.generate(
        "a function that returns the sum of squares of a list of ints",
        "python",
        sampling={"temperature": 0, "max_tokens": 200},
    )
    assert "def " in r.text and "```" not in r.text


def test_gemma3_plain_completion(gemma3: CodeModel) -> None:
    assert gemma3.family == "gemma" and gemma3.variant.variant == "pretrained" and not gemma3.fim_capable
    r = gemma3.complete("import os\n\ndef list_files(path):\n", sampling={"temperature": 0, "max_tokens": 48})
    assert r.mode == "completion"
    assert r.usage.completion_tokens > 0 and r.text.strip()


def test_streaming_chunks_join_to_the_result(qwen: CodeModel) -> None:
    chunks = list(
        qwen.stream(
            GenerationRequest("fim", "def add(a, b):\n", "", sampling={"temperature": 0, "max_tokens": 24})
        )
    )
    result = chunks[-1].result
    assert result is not None
    assert "".join(c.text for c in chunks).startswith(result.text)


def test_cli_fim_json_on_qwen(qwen_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "cgstudio.cli.main",
            "complete",
            "--model",
            str(qwen_path),
            "--prefix",
            IS_PRIME_PREFIX,
            "--suffix",
            IS_PRIME_SUFFIX,
            "--temp",
            "0",
            "-n",
            "160",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ.copy(),
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["timings"]["time_to_first_token_s"] > 0 and "return" in d["text"]
    assert "thought for" in r.stderr and "tok/s" in r.stderr
