"""Operations and cgstudio's own routes: /health, /metrics, the playground, the prompt preview, /admin/*."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from cgstudio.server.errors import COMMON_ERRORS
from cgstudio.server.protocol.cgstudio import PromptRequest, ReloadRequest
from cgstudio.server.queue import client_key
from cgstudio.server.routes.common import config, metrics, registry, runner
from cgstudio.server.service import describe_prompt

router = APIRouter(tags=["cgstudio"])

PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>CodeGemma Studio</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>CodeGemma Studio</h1>
<p>The server is running. The playground page is not installed in this build.</p>
<p>APIs: OpenAI at <code>/v1</code>, Ollama at <code>/api</code>, llama.cpp at <code>/infill</code> and
<code>/completion</code>. See <a href="/docs">/docs</a>, <a href="/health">/health</a>.</p>
</body></html>
"""


@router.get("/health", summary="Liveness (no auth)")
async def health(request: Request) -> dict[str, Any]:
    run = runner(request)
    loading = {j.alias for j in run.inflight if j.phase == "loading"}
    return {
        "status": "ok",
        "models": [
            {"name": e.alias, "loaded": e.loaded, "loading": e.alias in loading}
            for e in registry(request).entries.values()
        ],
        "queue_depth": run.gate.n_waiting,
    }


@router.get("/cgstudio/progress", summary="The caller's running requests and their phase")
async def progress(request: Request) -> dict[str, Any]:
    """What each of this client's requests is doing before its first token (the studio shows it).

    The client is the one ``X-Client-Id`` names (else its key and address, as the queue decides).
    Phases: queued, loading (the model), evaluating (the prompt), generating. Seconds are floats.
    """
    run, now = runner(request), time.perf_counter()
    me = client_key(request, getattr(request.state, "api_key", None))
    return {
        "jobs": [
            {
                "model": j.alias,
                "phase": j.phase,
                "phase_s": round(now - j.phase_at, 3),
                "prompt_tokens": j.prompt_tokens,
                "elapsed_s": round(now - j.t_start, 3),
            }
            for j in run.inflight
            if j.client == me and not j.finished
        ]
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus(request: Request) -> Response:
    return Response(metrics(request).render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def playground(request: Request) -> Response:
    index = config(request).static_dir / "index.html"
    if index.is_file():
        return FileResponse(index, media_type="text/html")
    return HTMLResponse(PLACEHOLDER)


@router.post(
    "/v1/prompt", summary="The exact prompt a request produces (no generation)", responses=COMMON_ERRORS
)
@router.post("/cgstudio/prompt", include_in_schema=False)
async def show_prompt(body: PromptRequest, request: Request) -> dict[str, Any]:
    spec = body.to_spec()
    spec.guards = body.guard_overrides()
    spec.client = client_key(request, getattr(request.state, "api_key", None)).key
    reg = registry(request)
    entry = reg.route(spec.model, spec.capability)
    # A preview tokenizes (and may trim a long chat): it waits for a slot like a generation.
    async with runner(request).admitted(request), reg.use(entry) as model:
        return await asyncio.to_thread(describe_prompt, spec, model)


@router.get("/admin/models", summary="Served models with their load parameters", responses=COMMON_ERRORS)
async def admin_models(request: Request) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": e.alias,
                "path": str(e.path),
                "loaded": e.loaded,
                "in_use": e.in_use,
                "family": e.meta.family,
                "variant": e.meta.variant,
                "fim": e.meta.fim,
                "load": e.settings.load.model_dump(),
                "n_ctx": e.model.engine.n_ctx if e.model else None,
            }
            for e in registry(request).entries.values()
        ]
    }


@router.post("/admin/reload", summary="Reload a model with new load parameters", responses=COMMON_ERRORS)
async def reload(body: ReloadRequest, request: Request) -> dict[str, Any]:
    reg = registry(request)
    name = body.model if body.model and body.model != "default" else reg.default.alias
    entry, load_s = await reg.reload(name, body.load)
    return {
        "model": entry.alias,
        "loaded": entry.loaded,
        "load": entry.settings.load.model_dump(),
        "n_ctx": entry.model.engine.n_ctx if entry.model else None,
        "load_duration_s": load_s,
    }
