"""The --base-url client against a scripted OpenAI-compatible server (httpx.MockTransport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from cgstudio.core.errors import UpstreamError, UsageError
from cgstudio.evaluation.datasets import get_tasks, load_humaneval
from cgstudio.evaluation.protocol import sampling_for
from cgstudio.evaluation.remote import RemoteBackend, guess_variant, open_remote
from cgstudio.evaluation.runner import run_eval


class FakeServer:
    """Answers /v1/completions with the canonical solution of the task whose prompt it gets."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = status
        tasks = [*load_humaneval(), *get_tasks("infill-single")]
        self.answers = {(t.prompt, t.suffix): t.canonical_solution for t in tasks}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        self.paths.append(request.url.path)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": {"message": "suffix is not supported"}})
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(
                200,
                json={"choices": [{"message": {"content": "```python\npass\n```"}, "finish_reason": "stop"}]},
            )
        text = self.answers.get((body["prompt"], body.get("suffix", "")), "")
        return httpx.Response(
            200,
            json={"choices": [{"text": text, "finish_reason": "stop"}], "usage": {"completion_tokens": 5}},
        )


def test_fim_sends_prompt_and_suffix_and_scores() -> None:
    server = FakeServer()
    transport = httpx.MockTransport(server)
    backend = RemoteBackend("http://server:8080", "codegemma-2b", "auto", transport=transport)
    tasks = get_tasks("infill-single")[:3]
    result = run_eval("infill-single", tasks, backend, style="fim")
    assert result.pass_at() == {"pass@1": 1.0}
    assert server.paths == ["/v1/completions"] * 3
    body = server.bodies[0]
    assert body["prompt"] == tasks[0].prompt and body["suffix"] == tasks[0].suffix
    assert body["model"] == "codegemma-2b" and body["max_tokens"] == 128 and body["temperature"] == 0.0
    assert body["top_k"] == 0 and body["min_p"] == 0.0 and "seed" not in body


def test_plain_humaneval_sends_no_suffix_and_chat_uses_chat() -> None:
    server = FakeServer()
    client = open_remote("http://server:8080/v1/", "m", "secret", transport=httpx.MockTransport(server))
    client.complete("def f():\n", None, sampling_for("plain", 0.0, None, 0))
    client.complete("def f():\n", "", sampling_for("fim-completion", 0.0, None, 0))
    reply = client.chat([{"role": "user", "content": "hi"}], sampling_for("chat", 0.0, None, 0))
    assert "suffix" not in server.bodies[0] and server.bodies[1]["suffix"] == ""
    assert server.bodies[0]["stop"][0] == "\ndef "
    assert server.paths[2] == "/v1/chat/completions" and "stop" not in server.bodies[2]
    assert reply.text == "```python\npass\n```"


def test_server_errors_become_upstream_errors_with_a_hint() -> None:
    client = open_remote("http://server", "m", transport=httpx.MockTransport(FakeServer(status=400)))
    with pytest.raises(UpstreamError, match=r"suffix is not supported.*cgstudio serve"):
        client.complete("a", "b", {"max_tokens": 1})


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cgstudio.engine.remote.client.time.sleep", lambda s: None)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = open_remote("http://127.0.0.1:9", "m", transport=httpx.MockTransport(down))
    with pytest.raises(UpstreamError, match="cannot reach"):
        client.chat([{"role": "user", "content": "x"}], {})
    with pytest.raises(UsageError):
        open_remote("server:8080", "m")


def test_variant_from_the_served_name() -> None:
    assert guess_variant("codegemma-7b-it") == "instruction-tuned"
    assert guess_variant("Qwen/Qwen2.5-Coder-0.5B-Instruct") == "instruction-tuned"
    assert guess_variant("codegemma:2b") == "pretrained"
    assert RemoteBackend("http://s", "codegemma-7b", "instruction-tuned").variant == "instruction-tuned"
