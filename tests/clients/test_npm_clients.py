"""Continue's unmodified npm packages against the server, on the demo Qwen model (issue 14).

- ``@continuedev/openai-adapters``' ``fimStream``, which Continue's autocomplete uses with the
  OpenAI provider: it posts the Mistral/Codestral FIM API shape to ``/v1/fim/completions`` and
  reads ``choices[0].delta.content`` from the SSE stream;
- the Continue CLI, ``cn -p`` (headless), with its default tools, configured with a
  ``config.yaml`` whose model points at the server.

The packages come from npm (tests/clients/npm/package.json, pinned) into .cache/npm-clients on
first use; the tests skip, loudly, only where the registry cannot be reached.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from client_testing import NpmClients, RecordingServer

pytestmark = pytest.mark.slow

FIM_SCRIPT = Path(__file__).parent / "npm" / "fim_stream.mjs"
CONFIG = """\
name: cgstudio
version: 0.0.1
schema: v1
models:
  - name: cgstudio
    provider: openai
    model: qwen
    apiBase: {url}/v1
    apiKey: unused
    roles: [chat, edit, apply]
    defaultCompletionOptions:
      maxTokens: 64
      temperature: 0
"""


def test_openai_adapters_fim_stream_yields_the_middle(
    npm_clients: NpmClients, qwen_server: RecordingServer
) -> None:
    before = len(qwen_server.posted("/v1/fim/completions"))
    proc = subprocess.run(
        [npm_clients.node, str(FIM_SCRIPT), str(npm_clients.dir), f"{qwen_server.url}/v1/", "qwen",
         "def add(a, b):\n    return ", "\n\n\nprint(add(1, 2))\n", "16"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["chunks"] >= 1
    assert "a + b" in result["text"], result
    assert "<|fim" not in result["text"]
    sent = [json.loads(b) for b in qwen_server.posted("/v1/fim/completions")[before:]]
    assert len(sent) == 1 and sent[0]["suffix"].startswith("\n") and sent[0]["stream"] is True


def test_continue_cli_headless_with_default_tools(
    npm_clients: NpmClients, qwen_server: RecordingServer, tmp_path: Path
) -> None:
    workspace, home = tmp_path / "project", tmp_path / "home"
    workspace.mkdir()
    home.mkdir()
    (workspace / "hello.py").write_text('print("hello")\n')
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=qwen_server.url))
    env = {
        **os.environ,
        "HOME": str(home),
        "CONTINUE_GLOBAL_DIR": str(home / ".continue"),
        "CONTINUE_CLI_ENABLE_TELEMETRY": "0",
    }
    before = len(qwen_server.posted("/v1/chat/completions"))
    proc = subprocess.run(
        [str(npm_clients.cn), "-p", "Say hello in one short sentence.", "--config", str(config)],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=800, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, f"stdout: {proc.stdout[-1500:]}\nstderr: {proc.stderr[-1500:]}"
    assert proc.stdout.strip(), proc.stderr
    assert "tools (function calling) are not supported" not in proc.stdout + proc.stderr
    sent = [json.loads(b) for b in qwen_server.posted("/v1/chat/completions")[before:]]
    assert sent, "cn sent no chat request"
    names = {t["function"]["name"] for t in sent[0].get("tools", [])}
    assert len(names) >= 3, f"cn -p sent no default tools: {sorted(names)}"
