"""Every face reaches the engine through one function: ``CodeModel.run_prompt``.

FIM, chat and raw completion from the CLI and from every generating endpoint of the three
dialects must call it exactly once per request, and nothing may decode without it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_testing import LiveFactory

from cgstudio.cli.main import main as cli_main
from cgstudio.core.engine import DecodeRequest, TokenStream
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.session import model as session_model

FIM = {"prompt": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))\n"}
NUM_PREDICT = {"num_predict": 3}
MESSAGES = [{"role": "user", "content": "Reverse a list in Python."}]
REQUESTS: list[tuple[str, str, dict[str, Any], str]] = [
    # (name, endpoint, body, model)
    ("openai fim", "/v1/completions", {**FIM, "max_tokens": 3}, "cg-pt"),
    ("openai raw", "/v1/completions", {"prompt": "def f(", "max_tokens": 3}, "cg-pt"),
    ("openai chat", "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 3}, "cg-it"),
    ("ollama fim", "/api/generate", {**FIM, "stream": False, "options": {"num_predict": 3}}, "cg-pt"),
    (
        "ollama raw",
        "/api/generate",
        {"prompt": "def f(", "raw": True, "stream": False, "options": {"num_predict": 3}},
        "cg-pt",
    ),
    (
        "ollama chat",
        "/api/chat",
        {"messages": MESSAGES, "stream": False, "options": {"num_predict": 3}},
        "cg-it",
    ),
    (
        "llama.cpp infill",
        "/infill",
        {"input_prefix": FIM["prompt"], "input_suffix": FIM["suffix"], "n_predict": 3},
        "cg-pt",
    ),
    ("llama.cpp completion", "/completion", {"prompt": "def f(", "n_predict": 3}, "cg-pt"),
]


class Spy:
    def __init__(self) -> None:
        self.runs: list[str] = []
        self.decodes = 0
        self.lock = threading.Lock()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    real_run = session_model.CodeModel.run_prompt
    real_stream = LlamaCppEngine.stream

    def run_prompt(self: Any, prompt: Any, *args: Any, **kw: Any) -> Iterator[Any]:
        with spy.lock:
            spy.runs.append(prompt.mode)
        return real_run(self, prompt, *args, **kw)

    def stream(self: Any, request: DecodeRequest) -> TokenStream:
        with spy.lock:
            spy.decodes += 1
        return real_stream(self, request)

    monkeypatch.setattr(session_model.CodeModel, "run_prompt", run_prompt)
    monkeypatch.setattr(LlamaCppEngine, "stream", stream)
    return spy


def test_every_generating_endpoint_goes_through_run_prompt(
    live_server: LiveFactory, synthetic: dict[str, Path], spy: Spy
) -> None:
    models = {"cg-pt": synthetic["cg-pt"], "cg-it": synthetic["cg-it"]}
    with live_server(models) as live, httpx.Client(base_url=live.url, timeout=120) as client:
        for name, endpoint, body, model in REQUESTS:
            before_runs, before_decodes = len(spy.runs), spy.decodes
            r = client.post(endpoint, json={**body, "model": model})
            assert r.status_code == 200, (name, r.text)
            assert len(spy.runs) == before_runs + 1, f"{name}: {spy.runs[before_runs:]}"
            assert spy.decodes == before_decodes + 1, f"{name} decoded outside run_prompt"
    assert {"fim", "chat", "completion"} <= set(spy.runs)


def test_the_cli_goes_through_run_prompt(
    synthetic: dict[str, Path], spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(synthetic["cg-pt"])
    args = ["complete", "-m", model, "--prefix", FIM["prompt"], "--suffix", FIM["suffix"], "-n", "3"]
    assert cli_main([*args, "--ctx-size", "512", "--json"]) == 0
    chat = [
        "chat",
        "-m",
        str(synthetic["cg-it"]),
        "Reverse a list.",
        "--max-tokens",
        "3",
        "--ctx-size",
        "512",
    ]
    assert cli_main(chat) == 0
    assert spy.runs == ["fim", "chat"]
    assert spy.decodes == 2
