"""``cgstudio eval … --base-url URL --backend openai`` end to end against a real upstream on loopback.

The upstream is llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server``)
running the tiny synthetic CodeGemma GGUF; cgstudio renders the FIM prompts and runs its guards,
the server only generates. Before the fix, the first uncached task raised AttributeError
(``EngineBackend`` skipped ``LocalBackend.__init__``, so it had no ``guards``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cgstudio.evaluation.protocol import EVAL_GUARDS
from cgstudio.testing.loopback import free_port
from cgstudio.testing.subprocess_server import server_process
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python's server extra")


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_codegemma_gguf(tmp_path_factory.mktemp("gguf") / "codegemma-2b-synthetic.gguf")


@pytest.fixture(scope="module")
def upstream(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "llama_cpp_server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with server_process(cmd, url + "/v1/models", log):
        yield url


def test_eval_through_the_openai_engine_backend(upstream: str, gguf: Path, tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "cgstudio.cli.main", "eval", "infill-single", "--base-url", upstream + "/v1",
        "--backend", "openai", "--model", str(gguf), "--limit", "2", "--json",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "report"),
    ]  # fmt: skip
    r = subprocess.run(
        args,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    assert (doc["task"], doc["n_tasks"], doc["generated"], doc["cached"]) == ("infill-single", 2, 2, 0)
    assert doc["passed"] + doc["failed"] + doc["timed_out"] + doc["error"] == 2
    assert doc["model_info"]["backend"] == "openai-engine"
    assert doc["settings"]["guards"] == EVAL_GUARDS
    assert doc["settings"]["backend"]["base_url"] == upstream
    # The upstream really generated: every completion has a finish reason from the pipeline.
    lines = (tmp_path / "report" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line)["finish_reason"] != "error" for line in lines)
