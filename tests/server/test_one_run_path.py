"""Every face reaches the engine through one function: ``CodeModel.stream(GenerationRequest)``,
which runs the built prompt through ``CodeModel.run_prompt``.

FIM, chat and raw completion from the CLI, the eval harness and every generating endpoint of the
three dialects must call each exactly once per request, with the request mode the dialect means,
and nothing may decode without them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_testing import LiveFactory

import cgstudio
from cgstudio.cli.main import main as cli_main
from cgstudio.core.engine import DecodeRequest, TokenStream
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.evaluation.backends import LocalBackend
from cgstudio.evaluation.protocol import GenRequest
from cgstudio.generation.request import GenerationRequest
from cgstudio.session import model as session_model

FIM = {"prompt": "def add(a, b):\n    ", "suffix": "\n\nprint(add(1, 2))\n"}
NUM_PREDICT = {"num_predict": 3}
MESSAGES = [{"role": "user", "content": "Reverse a list in Python."}]
REQUESTS: list[tuple[str, str, dict[str, Any], str]] = [
    # (name, endpoint, body, model); the name ends with the request mode it must become
    ("openai fim", "/v1/completions", {**FIM, "max_tokens": 3}, "cg-pt"),
    ("openai raw", "/v1/completions", {"prompt": "def f(", "max_tokens": 3}, "cg-pt"),
    ("openai chat", "/v1/chat/completions", {"messages": MESSAGES, "max_tokens": 3}, "cg-it"),
    ("mistral fim", "/v1/fim/completions", {**FIM, "max_tokens": 3}, "cg-pt"),
    ("ollama fim", "/api/generate", {**FIM, "stream": False, "options": {"num_predict": 3}}, "cg-pt"),
    (
        "ollama plain",
        "/api/generate",
        {"prompt": "def f(", "stream": False, "options": {"num_predict": 3}},
        "cg-pt",
    ),
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
    ("llama.cpp raw", "/completion", {"prompt": "def f(", "n_predict": 3}, "cg-pt"),
]


class Spy:
    def __init__(self) -> None:
        self.requests: list[str] = []  # GenerationRequest.mode per CodeModel.stream call
        self.runs: list[str] = []
        self.decodes = 0
        self.lock = threading.Lock()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    spy = Spy()
    real_run = session_model.CodeModel.run_prompt
    real_model_stream = session_model.CodeModel.stream

    def model_stream(self: Any, req: GenerationRequest, **kw: Any) -> Iterator[Any]:
        assert type(req) is GenerationRequest, "dialects pass the one request type, not their own"
        with spy.lock:
            spy.requests.append(req.mode)
        return real_model_stream(self, req, **kw)

    real_stream = LlamaCppEngine.stream

    def run_prompt(self: Any, prompt: Any, *args: Any, **kw: Any) -> Iterator[Any]:
        with spy.lock:
            spy.runs.append(prompt.mode)
        return real_run(self, prompt, *args, **kw)

    def stream(self: Any, request: DecodeRequest) -> TokenStream:
        with spy.lock:
            spy.decodes += 1
        return real_stream(self, request)

    monkeypatch.setattr(session_model.CodeModel, "stream", model_stream)
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
            assert spy.requests[before_runs:] == [name.split()[-1]], name
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
    assert spy.requests == ["fim", "chat"]
    assert spy.runs == ["fim", "chat"]
    assert spy.decodes == 2


def test_the_eval_harness_goes_through_stream(synthetic: dict[str, Path], spy: Spy) -> None:
    """Each eval style becomes a GenerationRequest: plain -> raw on a FIM model, fim, and chat."""
    model = cgstudio.load(str(synthetic["cg-pt"]), n_ctx=512)
    try:
        backend = LocalBackend(model)
        for style in ("plain", "fim", "chat"):
            backend.generate(GenRequest(style, "def f(", "\n", {"max_tokens": 2, "temperature": 0.0}))
    finally:
        model.close()
    assert spy.requests == ["raw", "fim", "chat"]
    assert spy.runs == ["completion", "fim", "chat"]
    assert spy.decodes == 3
