"""How a request is shaped for one kind of upstream, and how its stream is read.

A ``Dialect`` turns a ``DecodeRequest`` into the body of ``POST /v1/completions`` and names the
upstream's tokenize endpoints. ``vllm.VLLMDialect`` sends token ids; the text dialects in
``llamacpp_server`` send text. The streamed events are the same for all (OpenAI's completion
chunks), read by ``parse_event``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cgstudio.core.engine import SamplerConfig
from cgstudio.core.errors import UpstreamError

# OpenAI finish reasons -> DecodeStats.finish
FINISH = {"stop": "stop_token", "length": "max_tokens", "abort": "cancelled"}


@dataclass(frozen=True)
class Event:
    """One streamed completion chunk."""

    text: str
    finish_reason: str | None = None
    stop_reason: int | str | None = None  # vLLM: the stop token id or stop string that ended it
    completion_tokens: int | None = None  # from a usage chunk
    prompt_tokens: int | None = None
    cached_tokens: int | None = None


class Dialect(ABC):
    """Request shaping for one kind of upstream."""

    name: str
    token_prompts: bool  # True: `prompt` is a list of token ids; False: text
    tokenize_path: str | None = None  # relative to the server root; None = the upstream cannot tokenize
    detokenize_path: str | None = None
    tokenize_adds_bos = False  # the tokenize endpoint prepends BOS when the model adds one

    def completion_body(
        self,
        model: str,
        prompt: Sequence[int] | str,
        max_tokens: int,
        sampler: SamplerConfig,
        stop_ids: Sequence[int] = (),
        stop_texts: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The JSON body of a streamed ``POST /v1/completions``.

        The fields every OpenAI server takes, then this dialect's (``prompt_field``,
        ``extra_fields``), then the seed when there is one.
        """
        body: dict[str, Any] = {
            "model": model,
            "prompt": self.prompt_field(prompt),
            "max_tokens": max_tokens,
            "stream": True,
            "temperature": sampler.temperature,
            "top_p": sampler.top_p,
        }
        body.update(self.extra_fields(sampler, stop_ids, stop_texts))
        if sampler.seed is not None:
            body["seed"] = sampler.seed
        return body

    @abstractmethod
    def prompt_field(self, prompt: Sequence[int] | str) -> list[int] | str:
        """The ``prompt`` as this upstream takes it; TypeError for the other kind of prompt."""

    @abstractmethod
    def extra_fields(
        self, sampler: SamplerConfig, stop_ids: Sequence[int], stop_texts: Sequence[str]
    ) -> dict[str, Any]:
        """This dialect's sampling and stop fields."""

    def tokenize_body(self, model: str, text: str) -> dict[str, Any]:
        raise NotImplementedError

    def parse_tokens(self, doc: Any) -> list[int]:
        tokens = doc.get("tokens") if isinstance(doc, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise UpstreamError(f"the upstream's {self.tokenize_path} answer has no token list")
        return tokens

    def detokenize_body(self, model: str, tokens: Sequence[int]) -> dict[str, Any]:
        return {"model": model, "tokens": [int(t) for t in tokens]}

    def parse_text(self, doc: Any) -> str:
        raise NotImplementedError


def models_list(doc: Any) -> list[dict[str, Any]]:
    """The entries of a ``GET /v1/models`` answer."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise UpstreamError("the upstream's /v1/models answer has no model list; is it OpenAI-compatible?")
    return [d for d in data if isinstance(d, dict) and isinstance(d.get("id"), str)]


def sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of a server-sent event stream, up to ``[DONE]``."""
    for line in lines:
        if not line.startswith("data:"):
            continue  # comments (": ping"), event names, blank separators
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if data:
            yield data


def parse_event(doc: Any) -> Event:
    """One completion chunk; an error document in the stream raises ``UpstreamError``."""
    if not isinstance(doc, dict):
        raise UpstreamError("the upstream streamed something that is not a JSON object")
    if "error" in doc or doc.get("object") == "error":
        raise UpstreamError(f"the upstream failed mid-stream: {error_detail(doc)}")
    text, finish, stop_reason = "", None, None
    choices = doc.get("choices") or []
    if choices and isinstance(choices[0], dict):
        choice = choices[0]
        text = choice.get("text") or ""
        finish = choice.get("finish_reason")
        stop_reason = choice.get("stop_reason")
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else None
    completion = prompt = cached = None
    if usage:
        completion = usage.get("completion_tokens")
        prompt = usage.get("prompt_tokens")
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Event(
        text if isinstance(text, str) else "",
        finish if isinstance(finish, str) else None,
        stop_reason if isinstance(stop_reason, int | str) else None,
        completion if isinstance(completion, int) else None,
        prompt if isinstance(prompt, int) else None,
        cached if isinstance(cached, int) else None,
    )


def error_detail(doc: Any) -> str:
    """The message of an OpenAI-style (``{"error": {...}}``) or vLLM-style (``{"message"}``) error."""
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        for key in ("message", "detail"):
            if doc.get(key):
                return str(doc[key])[:500]
    return str(doc)[:500]
