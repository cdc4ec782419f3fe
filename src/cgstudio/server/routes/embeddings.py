"""Embedding routes: OpenAI /v1/embeddings, Ollama /api/embed and the older /api/embeddings.

Continue's and Twinny's codebase indexing and llama.vscode call these. The vectors come from the
--embedding-model (server/embeddings.py), never from a code model; they are L2-normalised.

    POST /v1/embeddings  {"model", "input": str | [str] | [int] | [[int]], "encoding_format": "float" |
                          "base64", "dimensions"?}  ->  {"object": "list", "data": [{"object":
                          "embedding", "index", "embedding"}], "model", "usage": {"prompt_tokens",
                          "total_tokens"}}; token-id inputs are used as given; too long is a 400
                          (extension: "truncate": true cuts instead)
    POST /api/embed      {"model", "input": str | [str], "truncate": true, "dimensions"?, "keep_alive"?,
                          "options"?}  ->  {"model", "embeddings": [[...]], "total_duration",
                          "load_duration", "prompt_eval_count"} (nanoseconds); an empty input loads
                          the model and answers "embeddings": [] (as Ollama)
    POST /api/embeddings {"model", "prompt"}  ->  {"embedding": [...]}; an empty prompt loads the model
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field

from cgstudio.server.embeddings import EmbeddingHost, EmbedInput, EmbedResult
from cgstudio.server.errors import COMMON_ERRORS
from cgstudio.server.protocol.common import OpenModel
from cgstudio.server.routes.common import registry

router = APIRouter(responses=COMMON_ERRORS)

_NS = 1_000_000_000


class OpenAIEmbeddingRequest(OpenModel):
    """POST /v1/embeddings (OpenAI). Unknown fields (``user``) are accepted and ignored."""

    model: str | None = Field(None, description="The --embedding-model alias (or file name), or 'default'.")
    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text, a list of texts, a list of token ids, or a list of token-id lists."
    )
    encoding_format: Literal["float", "base64"] | None = Field(
        "float", description="float: JSON numbers; base64: little-endian float32 bytes (the openai client's)."
    )
    dimensions: int | None = Field(
        None, ge=1, description="Keep the first N components (renormalised); at most the model's width."
    )
    truncate: bool = Field(
        False, description="Extension: cut inputs longer than the model's context instead of a 400."
    )

    def inputs(self) -> list[EmbedInput]:
        x = self.input
        if isinstance(x, str):
            return [x]
        if x and all(isinstance(t, int) for t in x):
            return [[t for t in x if isinstance(t, int)]]  # one token-id list
        return [t for t in x if not isinstance(t, int)]


class OllamaEmbedRequest(OpenModel):
    """POST /api/embed (Ollama)."""

    model: str | None = Field(None, description="The --embedding-model alias (':latest' is ignored).")
    input: str | list[str] | None = Field(None, description="A text or a list of texts; empty = load only.")
    truncate: bool = Field(True, description="Cut inputs longer than the model's context (false: 400).")
    dimensions: int | None = Field(
        None, ge=0, description="Keep the first N components (renormalised); 0 = all."
    )
    keep_alive: str | float | None = Field(None, description="Accepted; the embedding model stays loaded.")
    options: dict[str, Any] | None = Field(None, description="Accepted and ignored.")


class OllamaEmbeddingsRequest(OpenModel):
    """POST /api/embeddings (Ollama's older endpoint)."""

    model: str | None = Field(None, description="The --embedding-model alias (':latest' is ignored).")
    prompt: str = Field("", description="The text; empty = load only.")
    keep_alive: str | float | None = Field(None, description="Accepted; the embedding model stays loaded.")
    options: dict[str, Any] | None = Field(None, description="Accepted and ignored.")


def embeddings_host(request: Request) -> EmbeddingHost:
    return request.app.state.embeddings


@router.post("/v1/embeddings", tags=["openai"], summary="Embeddings from the --embedding-model")
async def openai_embeddings(body: OpenAIEmbeddingRequest, request: Request) -> Response:
    result = await embeddings_host(request).embed(
        body.model, body.inputs(), registry(request), truncate=body.truncate, dimensions=body.dimensions
    )
    return await asyncio.to_thread(_openai_response, result, body.encoding_format == "base64")


@router.post("/api/embed", tags=["ollama"], summary="Embeddings from the --embedding-model")
async def ollama_embed(body: OllamaEmbedRequest, request: Request) -> Response:
    host, reg = embeddings_host(request), registry(request)
    if body.input in (None, "", []):  # Ollama: no input loads the model and answers no vectors
        alias, load_s = await host.load(body.model, reg)
        return _json({"model": alias, "embeddings": [], "load_duration": int(load_s * _NS)})
    texts = [body.input] if isinstance(body.input, str) else list(body.input or [])
    result = await host.embed(
        body.model, texts, reg, truncate=body.truncate, dimensions=body.dimensions or None
    )
    return await asyncio.to_thread(_ollama_response, result)


@router.post("/api/embeddings", tags=["ollama"], summary="One embedding (Ollama's older endpoint)")
async def ollama_embeddings(body: OllamaEmbeddingsRequest, request: Request) -> Response:
    host, reg = embeddings_host(request), registry(request)
    if not body.prompt:  # Ollama: an empty prompt loads the model
        await host.load(body.model, reg)
        return _json({"embedding": []})
    result = await host.embed(body.model, [body.prompt], reg, truncate=True)
    return _json({"embedding": result.vectors[0].tolist()})


def _openai_response(result: EmbedResult, as_base64: bool) -> Response:
    def encode(v: np.ndarray) -> Any:
        if as_base64:
            return base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
        return v.tolist()

    return _json(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": encode(v)}
                for i, v in enumerate(result.vectors)
            ],
            "model": result.alias,
            "usage": {"prompt_tokens": result.n_tokens, "total_tokens": result.n_tokens},
        }
    )


def _ollama_response(result: EmbedResult) -> Response:
    return _json(
        {
            "model": result.alias,
            "embeddings": [v.tolist() for v in result.vectors],
            "total_duration": int(result.total_s * _NS),
            "load_duration": int(result.load_s * _NS),
            "prompt_eval_count": result.n_tokens,
        }
    )


def _json(doc: dict[str, Any]) -> Response:
    # Encoded here (in a worker thread for large answers): FastAPI's encoder walks every float.
    body = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), media_type="application/json")
