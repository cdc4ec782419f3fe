"""A small client for evaluating a model behind any OpenAI-compatible server (``--base-url``).

    /v1/completions        HumanEval on pretrained models: ``prompt`` only (a plain continuation), or
                           ``prompt`` + ``suffix=""`` for the FIM completion style; infilling:
                           ``prompt`` + ``suffix``, so the *server* renders its model's FIM format.
    /v1/chat/completions   HumanEval on instruction-tuned models.

cgstudio's own server (``cgstudio serve``) takes ``suffix``. llama.cpp's server ignores it on
/v1/completions (it has /infill instead) and vLLM accepts it only for a few models, so infilling
through those servers does not measure infilling; use cgstudio's server or a local GGUF.
Server-side guards apply as the server is configured: for the eval protocol start cgstudio's
server with ``CGSTUDIO_GUARDS__FIM_STOP_AT_SUFFIX=false``.

``open_remote`` is the one entry point for that client. ``eval run --base-url URL --backend openai``
uses the engine-level OpenAI backend instead (``open_engine_backend``): cgstudio renders the prompt
formats (FIM included, so vLLM's missing ``suffix`` does not matter) and applies its guards, and the
server only generates, exactly as ``cgstudio serve --backend openai`` does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from cgstudio.core.errors import InvalidInputError, UpstreamError, UsageError
from cgstudio.engine.remote import upstream_settings
from cgstudio.engine.remote.client import Hints, UpstreamClient
from cgstudio.evaluation.backends import EngineBackend
from cgstudio.evaluation.cache import remote_fingerprint
from cgstudio.evaluation.protocol import Generated, GenRequest
from cgstudio.families import variant_from_name
from cgstudio.session.remote import open_remote_model

if TYPE_CHECKING:
    from pathlib import Path

    from cgstudio.core.settings import Settings


_HINTS = Hints(down="is the server running?", credentials="pass --api-key", rejected="")
_FIM_HINT = "; infilling needs a server that takes `suffix` on /v1/completions, such as `cgstudio serve`"


@dataclass(frozen=True)
class RemoteReply:
    text: str
    finish_reason: str
    completion_tokens: int | None


def guess_variant(model: str) -> str:
    """ "instruction-tuned" when the served name says so (``-it``, ``instruct``, ``chat``), else
    "pretrained": a server does not tell, and ``--variant`` overrides."""
    return variant_from_name(model)


class RemoteModel:
    """One model on an OpenAI-compatible server; safe to call from several threads (``--parallel``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = base_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"--base-url {base_url!r} is not an http(s) URL; e.g. http://127.0.0.1:8080/v1")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.model = model
        self._client = UpstreamClient(
            self.base_url, api_key=api_key, read_timeout_s=timeout_s, hints=_HINTS, transport=transport
        )

    def complete(self, prompt: str, suffix: str | None, sampling: Mapping[str, Any]) -> RemoteReply:
        """POST /v1/completions; ``suffix=None`` leaves the field out (a plain continuation)."""
        body: dict[str, Any] = {"model": self.model, "prompt": prompt, **_sampling(sampling)}
        if suffix is not None:
            body["suffix"] = suffix
        doc = self._post("/completions", body)
        choice = _first_choice(doc)
        return RemoteReply(
            str(choice.get("text") or ""), str(choice.get("finish_reason") or "stop"), _tokens(doc)
        )

    def chat(self, messages: Sequence[Mapping[str, str]], sampling: Mapping[str, Any]) -> RemoteReply:
        body = {"model": self.model, "messages": [dict(m) for m in messages], **_sampling(sampling)}
        doc = self._post("/chat/completions", body)
        choice = _first_choice(doc)
        message = choice.get("message") or {}
        return RemoteReply(
            str(message.get("content") or ""), str(choice.get("finish_reason") or "stop"), _tokens(doc)
        )

    def close(self) -> None:
        self._client.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            doc = self._client.json("POST", path, body)
        except InvalidInputError as exc:  # a rejected request: this eval cannot run on that server
            raise UpstreamError(exc.message + (_FIM_HINT if "suffix" in body else "")) from exc
        if not isinstance(doc, dict):
            raise UpstreamError(f"{self.base_url}{path} answered with an unexpected JSON document")
        return doc


def open_remote(
    base_url: str, model: str, api_key: str | None = None, *, transport: httpx.BaseTransport | None = None
) -> RemoteModel:
    """A client for ``model`` on the OpenAI-compatible server at ``base_url`` (``/v1`` is added when
    missing). ``api_key`` goes out as a Bearer token. ``UpstreamClient`` sends the requests (its retries
    and timeouts; 600 s for an answer); failures raise ``UpstreamError`` (``OverloadedError`` for 429)."""
    return RemoteModel(base_url, model, api_key, transport=transport)


def _sampling(s: Mapping[str, Any]) -> dict[str, Any]:
    # top_k and min_p are llama.cpp/vLLM/cgstudio extensions; sent so servers do not apply their own
    # defaults (cgstudio's are top_k 40 and min_p 0.05).
    keys = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "stop", "seed")
    return {k: s[k] for k in keys if s.get(k) is not None and s.get(k) != []}


def _first_choice(doc: dict[str, Any]) -> dict[str, Any]:
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamError("the server's answer has no choices")
    return choices[0]


def _tokens(doc: dict[str, Any]) -> int | None:
    usage = doc.get("usage")
    value = usage.get("completion_tokens") if isinstance(usage, dict) else None
    return value if isinstance(value, int) else None


def open_engine_backend(
    base_url: str,
    api_key: str | None,
    model: str | None,
    tokenizer: Path | None,
    family: str | None,
    settings: Settings,
) -> EngineBackend:
    """An eval backend running cgstudio's pipeline on the remote engine (``OpenAIEngine``).

    ``model``: the upstream's model id (default: the first it lists); ``tokenizer``: the model's GGUF
    for exact token counts. The cache key is the URL and the upstream's model id.
    """
    upstream = upstream_settings(
        base_url=base_url, api_key=api_key, model=model, tokenizer=tokenizer, family=family
    )
    code_model = open_remote_model(upstream, settings)
    engine: Any = code_model.engine
    return EngineBackend(code_model, upstream.root, engine.discover().model)


class RemoteBackend:
    """A model on an OpenAI-compatible server (``remote.open_remote``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        variant: str,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.client = open_remote(base_url, model, api_key, transport=transport)
        self.base_url = self.client.base_url
        self.name = model
        self.fingerprint = remote_fingerprint(self.base_url, model)
        self.variant = variant if variant in ("pretrained", "instruction-tuned") else guess_variant(model)
        self.fim_capable = True  # the server decides; a server that ignores `suffix` is documented

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_url": self.base_url,
            "variant": self.variant,
            "fingerprint": self.fingerprint,
        }

    def cache_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url}

    def generate(self, request: GenRequest) -> Generated:
        if request.style == "chat":
            reply = self.client.chat([{"role": "user", "content": request.prompt}], request.sampling)
        else:
            suffix = None if request.style == "plain" else request.suffix
            reply = self.client.complete(request.prompt, suffix, request.sampling)
        return Generated(reply.text, reply.finish_reason, reply.completion_tokens)

    def close(self) -> None:
        self.client.close()
