"""Scripted upstreams for unit tests (httpx.MockTransport), answering with the shapes their docs give.

``FakeVLLM`` follows vLLM's OpenAI server: model cards with ``owned_by: "vllm"`` and
``max_model_len``; ``POST /tokenize`` {"model", "prompt", "add_special_tokens"} -> {"count",
"max_model_len", "tokens"}; ``POST /detokenize`` {"model", "tokens"} -> {"prompt"}; streamed
``/v1/completions`` chunks with ``stop_reason`` and a final usage chunk (stream_options). Its
tokenizer is a real GGUF vocabulary, so token ids are the model's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from cgstudio.engine.remote.tokenizer import Tokenizer


def sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"


def chunk(text: str, finish: str | None = None, stop_reason: int | str | None = None) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": stop_reason}
        ],
    }


class FakeVLLM:
    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        model: str = "Qwen/Qwen2.5-Coder-0.5B",
        pieces: tuple[str, ...] = ("return", " a", " +", " b"),
        stop_reason: int | None = None,
        max_model_len: int = 4096,
    ) -> None:
        self.tok = tokenizer
        self.model = model
        self.pieces = pieces
        self.stop_reason = stop_reason
        self.max_model_len = max_model_len
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        # Scripted failures for /v1/completions: each call pops one (a status or an exception).
        self.failures: list[int | Exception] = []
        self.completion: Callable[[dict[str, Any]], httpx.Response] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        body = json.loads(request.content) if request.content else {}
        if path == "/v1/models":
            card = {
                "id": self.model,
                "object": "model",
                "owned_by": "vllm",
                "max_model_len": self.max_model_len,
            }
            return httpx.Response(200, json={"object": "list", "data": [card]})
        if path == "/tokenize":
            assert set(body) == {"model", "prompt", "add_special_tokens"}
            tokens = self.tok.tokenize(body["prompt"], parse_special=True)  # HF tokenizers parse specials
            if body["add_special_tokens"] and self.tok.info.add_bos and self.tok.info.bos_id is not None:
                tokens = [self.tok.info.bos_id, *tokens]
            return httpx.Response(
                200, json={"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens}
            )
        if path == "/detokenize":
            text = self.tok.detokenize(body["tokens"], special=True).decode()
            return httpx.Response(200, json={"prompt": text})
        if path == "/v1/completions":
            self.bodies.append(body)
            if self.failures:
                failure = self.failures.pop(0)
                if isinstance(failure, Exception):
                    raise failure
                return httpx.Response(failure, json={"object": "error", "message": f"scripted {failure}"})
            if self.completion is not None:
                return self.completion(body)
            events = [chunk(p) for p in self.pieces]
            events.append(chunk("", "stop", self.stop_reason))
            events.append(
                {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "choices": [],
                    "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": len(self.pieces)},
                }
            )
            return httpx.Response(200, content=sse(events), headers={"content-type": "text/event-stream"})
        return httpx.Response(404, json={"detail": "Not Found"})


class FakeTextServer:
    """A plain OpenAI-compatible server: text prompts, no tokenize endpoint."""

    def __init__(self, pieces: tuple[str, ...] = ("x", " = 1")) -> None:
        self.pieces = pieces
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "qwen2.5-coder-7b", "owned_by": "someone"}]})
        if path == "/v1/completions":
            self.bodies.append(json.loads(request.content))
            events = [chunk(p) for p in self.pieces] + [chunk("", "length")]
            return httpx.Response(200, content=sse(events), headers={"content-type": "text/event-stream"})
        return httpx.Response(404, json={"error": {"message": "no such route"}})
