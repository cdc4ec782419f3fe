"""llama.cpp-server-compatible routes: /infill, /completion, /tokenize, /detokenize, /apply-template.

The previews (/tokenize, /detokenize, /apply-template) hold a slot of the runner's fair queue
while they work, so a full queue answers them 503 + Retry-After like a generation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from cgstudio.core.errors import InvalidInputError
from cgstudio.generation.pipeline import Chunk, distinct
from cgstudio.generation.request import GenerationRequest
from cgstudio.server.errors import COMMON_ERRORS, error_payload
from cgstudio.server.protocol import llamacpp as proto
from cgstudio.server.protocol.common import sse
from cgstudio.server.protocol.openai import chat_message
from cgstudio.server.queue import Job
from cgstudio.server.routes.common import event_stream, registry, runner
from cgstudio.server.service import GenSpec
from cgstudio.session.model import CodeModel, check_text

router = APIRouter(tags=["llama.cpp"], responses=COMMON_ERRORS)


@router.post("/infill", summary="Fill in the middle (llama.vim / llama.vscode)")
async def infill(body: proto.InfillRequest, request: Request) -> Any:
    return await _generate(request, body, _with_guards(body))


@router.post("/completion", summary="Raw completion: control-token text becomes tokens")
async def completion(body: proto.CompletionRequest, request: Request) -> Any:
    return await _generate(request, body, _with_guards(body))


async def _generate(request: Request, body: proto._LlamaSampling, spec: GenSpec) -> Any:
    run = runner(request)
    job = await run.start(request, spec)
    limits = proto.ChoiceLimits(body.n_indent, body.t_max_predict_ms, body.n_cmpl or 1)
    if body.stream:
        return event_stream(_events(request, job, body, spec, limits))
    async with run.watch(request, job):
        async for chunk in run.iterate(job):
            _feed(job, spec, limits, chunk)
    results = job.results
    assert results
    limited = [limits.of(i).stopped for i in range(len(results))]
    for i, r in enumerate(results):
        r.text = "" if spec.prewarm else limits.of(i).text
    kept = distinct(results) if len(results) > 1 else results
    docs = [
        proto.final_doc(
            job.alias,
            r.text,
            r,
            job.load_s,
            limited=limited[next(j for j, x in enumerate(results) if x is r)],
            generation_settings=_settings(job, spec),
            index=i,
        )
        for i, r in enumerate(kept)
    ]
    if len(results) == 1:  # one suggestion: an object; several: a list, as llama-server answers
        return proto.select_fields(docs[0], body.response_fields)
    return [proto.select_fields(d, body.response_fields) for d in docs]


def _feed(job: Job, spec: GenSpec, limits: proto.ChoiceLimits, chunk: Chunk) -> str:
    if spec.prewarm or not chunk.text:
        return ""
    kept = limits.of(chunk.index).feed(chunk.text)
    if limits.stopped:
        job.stop("limit")
    return kept


async def _events(
    request: Request, job: Job, body: proto._LlamaSampling, spec: GenSpec, limits: proto.ChoiceLimits
) -> AsyncIterator[str]:
    try:
        async for chunk in runner(request).iterate(job):
            kept = _feed(job, spec, limits, chunk)
            if kept:
                yield sse(proto.select_fields(proto.partial_doc(kept, chunk.index), body.response_fields))
            for i, r in enumerate(chunk.choices):  # the end: each choice's final object
                doc = proto.final_doc(
                    job.alias,
                    "",
                    r,
                    job.load_s,
                    limited=limits.of(i).stopped,
                    generation_settings=_settings(job, spec),
                    index=i,
                )
                yield sse(proto.select_fields(doc, body.response_fields))
    except Exception as exc:
        yield sse(error_payload(exc))


def _settings(job: Job, spec: GenSpec) -> dict[str, Any]:
    s = {
        **job.entry.settings.sampling.model_dump(),
        **{k: v for k, v in spec.sampling.items() if v is not None},
    }
    s["n_predict"] = s.pop("max_tokens")
    s["n_ctx"] = job.entry.settings.load.n_ctx
    s["model"] = job.alias
    return s


@router.post("/tokenize", summary="Tokenize text (special-token text is parsed unless parse_special=false)")
async def tokenize(body: proto.TokenizeRequest, request: Request) -> dict[str, Any]:
    reg = registry(request)
    entry, _ = reg.resolve(body.model, "completion", "any")  # llama-server ignores unknown names
    async with runner(request).admitted(request), reg.use(entry) as model:
        return await asyncio.to_thread(_tokenize, model, body)


def _tokenize(model: CodeModel, body: proto.TokenizeRequest) -> dict[str, Any]:
    check_text("content", body.content)
    ids = model.vocab.raw(body.content) if body.parse_special else model.vocab.plain(body.content)
    info = model.engine.info
    if body.add_special and info.add_bos and info.bos_id is not None and ids[:1] != [info.bos_id]:
        ids = [info.bos_id, *ids]
    if not body.with_pieces:
        return {"tokens": ids}
    return {"tokens": [{"id": t, "piece": _piece(model, t)} for t in ids]}


def _piece(model: CodeModel, token: int) -> str | list[int]:
    raw = model.engine.piece(token, special=True)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return list(raw)  # part of a multi-byte character: llama.cpp returns the bytes


@router.post("/detokenize", summary="Token ids to text (special tokens spelled out)")
async def detokenize(body: proto.DetokenizeRequest, request: Request) -> dict[str, Any]:
    reg = registry(request)
    entry, _ = reg.resolve(body.model, "completion", "any")  # llama-server ignores unknown names
    async with runner(request).admitted(request), reg.use(entry) as model:
        n_vocab = model.engine.info.n_vocab
        bad = [t for t in body.tokens if not 0 <= t < n_vocab]
        if bad:
            raise InvalidInputError(f"token ids {bad[:5]} are outside the vocabulary (0..{n_vocab - 1})")
        return {"content": await asyncio.to_thread(model.vocab.render, body.tokens)}


@router.post("/apply-template", summary="The chat prompt text for messages")
async def apply_template(body: proto.ApplyTemplateRequest, request: Request) -> dict[str, Any]:
    reg = registry(request)
    messages = [chat_message(m) for m in body.messages]
    entry, _ = reg.resolve(body.model, "chat", "any")
    async with runner(request).admitted(request), reg.use(entry) as model:
        prompt, _ = await asyncio.to_thread(model.prompt, GenerationRequest("chat", messages=messages))
        return {"prompt": await asyncio.to_thread(model.vocab.render, prompt.tokens)}


def _with_guards(body: proto.InfillRequest | proto.CompletionRequest) -> GenSpec:
    spec = body.to_spec()
    spec.guards = body.guard_overrides()
    return spec
