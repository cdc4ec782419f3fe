"""Ollama-compatible routes: /api/generate, /api/chat, /api/tags, /api/show, /api/ps, /api/version."""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib import metadata
from typing import Any

from fastapi import APIRouter, Request

from cgstudio.core.errors import UnsupportedModeError
from cgstudio.core.tools import ToolCall
from cgstudio.server.config import parse_duration
from cgstudio.server.errors import COMMON_ERRORS, classify
from cgstudio.server.protocol import ollama as proto
from cgstudio.server.protocol.common import context_files, ndjson
from cgstudio.server.protocol.tools import ollama_calls, tool_specs
from cgstudio.server.queue import Job
from cgstudio.server.registry import KEEP_DEFAULT
from cgstudio.server.routes.common import ndjson_stream, registry, runner
from cgstudio.server.service import GenSpec

router = APIRouter(tags=["ollama"], responses=COMMON_ERRORS)


@router.post("/api/generate", summary="Generate: FIM with suffix, raw prompts, or a templated prompt")
async def generate(body: proto.GenerateRequest, request: Request) -> Any:
    body.check_common()
    if body.images:
        raise UnsupportedModeError("images are not supported by code models")
    keep = parse_duration(body.keep_alive, default=KEEP_DEFAULT)
    reg = registry(request)
    if not body.prompt and body.suffix is None:
        # Ollama: an empty prompt loads the model (keep_alive 0: unloads it).
        entry = reg.route(body.model, "completion")
        if keep == 0:
            await reg.unload_if_idle(entry)
            reason = "unload"
        else:
            async with reg.use(entry, keep):
                reason = "load"
        return {
            "model": entry.alias,
            "created_at": proto.iso(),
            "response": "",
            "done": True,
            "done_reason": reason,
        }
    common: dict[str, Any] = {"sampling": body.sampling(), "keep_alive": keep, "endpoint": "/api/generate"}
    common["files"] = context_files(body.context_files)
    if body.verbatim():
        spec = GenSpec("raw", model=body.model, prompt=body.prompt, path=body.filepath, **common)
    elif body.suffix is not None:
        spec = GenSpec(
            "fim", model=body.model, prompt=body.prompt, suffix=body.suffix, path=body.filepath, **common
        )
    else:
        spec = GenSpec("plain", model=body.model, prompt=body.prompt, path=body.filepath, **common)
        entry = reg.route(body.model, spec.capability)
        spec.model = entry.alias
        # A rendered FIM template (Twinny, llm-ls) is FIM on every model, never a chat message.
        if entry.meta.variant == "instruction-tuned" and spec.fim_template is None:
            messages = [{"role": "system", "content": body.system}] if body.system else []
            messages.append({"role": "user", "content": body.prompt})
            spec = GenSpec("chat", model=entry.alias, messages=messages, **common)
    spec.guards = body.guard_overrides()
    job = await runner(request).start(request, spec)
    if body.stream:
        return ndjson_stream(_lines(request, job, chat=False))
    result = await runner(request).collect(request, job)
    return {
        "model": job.alias,
        "created_at": proto.iso(),
        "response": result.text,
        **proto.done_fields(result, job.elapsed_s(), job.load_s),
    }


@router.post("/api/chat", summary="Chat")
async def chat(body: proto.ChatRequest, request: Request) -> Any:
    body.check_common()
    tools, choice = tool_specs(body.tools, None)
    messages = [m.message() for m in body.messages]
    keep = parse_duration(body.keep_alive, default=KEEP_DEFAULT)
    spec = GenSpec(
        "chat",
        model=body.model,
        messages=messages,
        tools=tools,
        tool_choice=choice,
        sampling=body.sampling(),
        keep_alive=keep,
        endpoint="/api/chat",
    )
    spec.guards = body.guard_overrides()
    job = await runner(request).start(request, spec)
    if body.stream:
        return ndjson_stream(_lines(request, job, chat=True))
    result = await runner(request).collect(request, job)
    return {
        "model": job.alias,
        "created_at": proto.iso(),
        "message": _message(result.text, result.tool_calls),
        **proto.done_fields(result, job.elapsed_s(), job.load_s),
    }


async def _lines(request: Request, job: Job, *, chat: bool) -> AsyncIterator[str]:
    def piece(text: str, calls: list[ToolCall] | None = None) -> dict[str, Any]:
        if chat:
            return {"message": _message(text, calls)}
        return {"response": text}

    try:
        async for chunk in runner(request).iterate(job):
            if chunk.text or chunk.tool_calls:
                yield ndjson(
                    {
                        "model": job.alias,
                        "created_at": proto.iso(),
                        **piece(chunk.text, chunk.tool_calls),
                        "done": False,
                    }
                )
            if chunk.result is not None:
                yield ndjson(
                    {
                        "model": job.alias,
                        "created_at": proto.iso(),
                        **piece(""),
                        **proto.done_fields(chunk.result, job.elapsed_s(), job.load_s),
                    }
                )
    except Exception as exc:  # Ollama clients read a mid-stream error as {"error": "message"}
        yield ndjson({"error": classify(exc)[3]})


def _message(text: str, calls: list[ToolCall] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        doc["tool_calls"] = ollama_calls(calls)
    return doc


@router.get("/api/tags", summary="List served models")
async def tags(request: Request) -> dict[str, Any]:
    return {"models": [proto.tag_doc(e) for e in registry(request).entries.values()]}


@router.get("/api/ps", summary="Models loaded in memory")
async def ps(request: Request) -> dict[str, Any]:
    return {"models": [proto.ps_doc(e) for e in registry(request).entries.values() if e.loaded]}


@router.post("/api/show", summary="Model details, template and capabilities")
async def show(body: proto.ShowRequest, request: Request) -> dict[str, Any]:
    reg = registry(request)
    name = body.model or body.name
    entry = reg.get(name) if name and name != "default" else reg.default
    return proto.show_doc(entry)


@router.get("/api/version", summary="Ollama API version")
async def version() -> dict[str, str]:
    return {"version": proto.OLLAMA_API_VERSION, "cgstudio": metadata.version("cgstudio")}
