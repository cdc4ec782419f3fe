"""Helpers every router uses: app state accessors and the streaming response."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import StreamingResponse

from cgstudio.server.config import ServerSettings
from cgstudio.server.prometheus import Metrics
from cgstudio.server.queue import Runner
from cgstudio.server.registry import Registry

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def runner(request: Request) -> Runner:
    return request.app.state.runner


def registry(request: Request) -> Registry:
    return request.app.state.registry


def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def config(request: Request) -> ServerSettings:
    return request.app.state.config


def event_stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


def ndjson_stream(body: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(body, media_type="application/x-ndjson", headers=SSE_HEADERS)
