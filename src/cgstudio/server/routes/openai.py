"""OpenAI-compatible routes: /v1/models, /v1/completions, /v1/chat/completions, /v1/fim/completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from cgstudio.generation.pipeline import Chunk, distinct
from cgstudio.server.errors import COMMON_ERRORS, error_payload
from cgstudio.server.protocol import mistral
from cgstudio.server.protocol import openai as proto
from cgstudio.server.protocol.common import SSE_DONE, new_id, now_s, sse, timings_extra, warnings_extra
from cgstudio.server.protocol.tools import openai_call_deltas
from cgstudio.server.queue import Job
from cgstudio.server.routes.common import event_stream, registry, runner

router = APIRouter(tags=["openai"], responses=COMMON_ERRORS)


@router.get("/v1/models", summary="List served models")
async def list_models(request: Request) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "id": e.alias,
                "object": "model",
                "created": int(e.meta.modified),
                "owned_by": "cgstudio",
                "family": e.meta.family,
                "variant": e.meta.variant,
                "fim": e.meta.fim,
                "loaded": e.loaded,
                "demo": e.meta.demo,
            }
            for e in registry(request).entries.values()
        ],
    }


async def _start(
    body: proto.CompletionRequest | proto.ChatRequest | mistral.FimRequest, request: Request
) -> Job:
    """Admit the request: its ``GenSpec`` with the body's per-request guard overrides."""
    spec = body.to_spec()
    spec.guards = body.guard_overrides()
    return await runner(request).start(request, spec)


@router.post("/v1/completions", summary="Completion: FIM with suffix, raw continuation without")
async def completions(body: proto.CompletionRequest, request: Request) -> Any:
    job = await _start(body, request)
    cid, created = new_id("cmpl"), now_s()
    if body.stream:
        return event_stream(_completion_events(request, job, cid, created, body.include_usage))
    result = await runner(request).collect(request, job)
    choices = distinct(job.results) if len(job.results) > 1 else []
    return proto.completion_doc(cid, created, job.alias, result, job.load_s, choices)


async def _completion_events(
    request: Request, job: Job, cid: str, created: int, include_usage: bool
) -> AsyncIterator[str]:
    try:
        async for chunk in runner(request).iterate(job):
            if chunk.text:
                doc = proto.completion_chunk(cid, created, job.alias, chunk.text, index=chunk.index)
                yield sse(_usage_null(doc, include_usage))
            if chunk.result is not None:
                for i, r in enumerate(chunk.choices):  # choice 0's carries the extras
                    finish = proto.FINISH.get(r.finish_reason, "stop")
                    doc = proto.completion_chunk(cid, created, job.alias, "", finish, index=i)
                    yield sse(_usage_null(_extras(doc, r, job) if i == 0 else doc, include_usage))
                if include_usage:
                    yield sse(_usage_chunk(doc, chunk, job))
    except Exception as exc:  # after the headers are sent, errors travel as an event
        yield sse(error_payload(exc))
    yield SSE_DONE


@router.post("/v1/chat/completions", summary="Chat completion")
async def chat_completions(body: proto.ChatRequest, request: Request) -> Any:
    job = await _start(body, request)
    cid, created = new_id("chatcmpl"), now_s()
    if body.stream:
        return event_stream(_chat_events(request, job, cid, created, body.include_usage))
    result = await runner(request).collect(request, job)
    choices = distinct(job.results) if len(job.results) > 1 else []
    return proto.chat_doc(cid, created, job.alias, result, job.load_s, choices)


@router.post(
    "/v1/fim/completions",
    summary="Fill in the middle, Mistral's FIM API (Continue's fimStream): chat-shaped answer",
)
async def fim_completions(body: mistral.FimRequest, request: Request) -> Any:
    job = await _start(body, request)
    cid, created = new_id("cmpl"), now_s()
    if body.stream:
        return event_stream(_chat_events(request, job, cid, created, body.include_usage))
    result = await runner(request).collect(request, job)
    return proto.chat_doc(cid, created, job.alias, result, job.load_s)


async def _chat_events(
    request: Request, job: Job, cid: str, created: int, include_usage: bool
) -> AsyncIterator[str]:
    yield sse(
        _usage_null(
            proto.chat_chunk(cid, created, job.alias, {"role": "assistant", "content": ""}), include_usage
        )
    )
    started = {0}  # choices whose role went out (choice 0's above; the others' with their first text)
    calls_sent = 0  # tool calls streamed so far: the next one's index
    try:
        async for chunk in runner(request).iterate(job):
            if chunk.text:
                delta = {"content": chunk.text}
                if chunk.index not in started:
                    started.add(chunk.index)
                    delta = {"role": "assistant", **delta}
                doc = proto.chat_chunk(cid, created, job.alias, delta, index=chunk.index)
                yield sse(_usage_null(doc, include_usage))
            for call_delta in openai_call_deltas(chunk.tool_calls, calls_sent):
                doc = proto.chat_chunk(cid, created, job.alias, {"tool_calls": call_delta}, index=chunk.index)
                yield sse(_usage_null(doc, include_usage))
            calls_sent += len(chunk.tool_calls)
            if chunk.result is not None:
                for i, r in enumerate(chunk.choices):  # choice 0's carries the extras
                    finish = proto.FINISH.get(r.finish_reason, "stop")
                    doc = proto.chat_chunk(cid, created, job.alias, {}, finish, index=i)
                    yield sse(_usage_null(_extras(doc, r, job) if i == 0 else doc, include_usage))
                if include_usage:
                    yield sse(_usage_chunk(doc, chunk, job))
    except Exception as exc:
        yield sse(error_payload(exc))
    yield SSE_DONE


def _extras(doc: dict[str, Any], result: Any, job: Job) -> dict[str, Any]:
    return {**doc, "timings": timings_extra(result, job.load_s), "warnings": warnings_extra(result)}


def _usage_chunk(doc: dict[str, Any], last: Chunk, job: Job) -> dict[str, Any]:
    """The usage chunk that ends a stream with include_usage: no choices, every choice counted."""
    assert last.result is not None
    return _extras(
        {**doc, "choices": [], "usage": proto.usage_doc(last.result, last.choices)}, last.result, job
    )


def _usage_null(doc: dict[str, Any], include_usage: bool) -> dict[str, Any]:
    # With include_usage, OpenAI sends "usage": null on every chunk but the last.
    return {**doc, "usage": None} if include_usage else doc
