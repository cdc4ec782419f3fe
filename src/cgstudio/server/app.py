"""The app factory. All state lives on ``app.state``: config, metrics, registry, runner."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import mimetypes
from collections.abc import AsyncIterator, Iterable, Iterator
from importlib import metadata
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from starlette.routing import Route

from cgstudio.server.config import ServerSettings
from cgstudio.server.embeddings import EmbeddingHost
from cgstudio.server.errors import install_handlers
from cgstudio.server.middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    BrowserGuardMiddleware,
    BrowserPolicy,
    MetricsMiddleware,
)
from cgstudio.server.prometheus import Metrics
from cgstudio.server.queue import Runner
from cgstudio.server.registry import Inspector, Loader, Registry
from cgstudio.server.routes import admin, embeddings, llamacpp, ollama, openai

DESCRIPTION = """Local CodeGemma models over three dialects on one port:
OpenAI (`/v1`), Ollama (`/api`) and llama.cpp's server (`/infill`, `/completion`, `/tokenize`).
Every endpoint runs the same prompt formats, guards and pipeline as the `cgstudio` CLI.
Send `Authorization: Bearer KEY` (or `X-API-Key`) when the server has an API key."""


def create_app(
    config: ServerSettings | None = None, *, loader: Loader | None = None, inspector: Inspector | None = None
) -> FastAPI:
    """Build the app. ``loader``/``inspector`` replace llama.cpp loading (tests use slowed engines)."""
    config = config or ServerSettings()
    metrics = Metrics()
    registry = Registry(config, metrics, loader=loader, inspector=inspector)
    runner = Runner(
        registry,
        metrics,
        parallel=config.parallel,
        max_queue=config.max_queue,
        retry_after_s=config.retry_after_s,
        api_key=config.api_key,
        speculate_next=config.speculate_next,
    )
    embedder = EmbeddingHost(config.embedding_model, config.settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(registry.inspect_all)
        await asyncio.to_thread(embedder.inspect)
        sweeper = asyncio.create_task(registry.sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            await runner.close()
            await registry.close()
            await embedder.close()

    app = FastAPI(
        title="CodeGemma Studio",
        version=metadata.version("cgstudio"),
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.metrics = metrics
    app.state.registry = registry
    app.state.runner = runner
    app.state.embeddings = embedder
    install_handlers(app)
    for module in (openai, ollama, llamacpp, embeddings, admin):
        app.include_router(module.router)
    # Module scripts need a JavaScript type; some systems' tables map .js to text/plain.
    mimetypes.add_type("text/javascript", ".js")
    app.mount("/static", StaticFiles(directory=config.static_dir, check_dir=False), name="static")

    @functools.cache
    def known_paths() -> frozenset[str]:
        return frozenset(_route_paths(app.routes))

    # Added innermost first: the last one added runs first.
    app.add_middleware(BodyLimitMiddleware, limit=config.max_body_bytes, read_timeout_s=config.read_timeout_s)
    app.add_middleware(AuthMiddleware, api_key=config.api_key, admin_key=config.admin_key)
    app.add_middleware(BrowserGuardMiddleware, policy=BrowserPolicy.from_settings(config))
    app.add_middleware(MetricsMiddleware, metrics=metrics, known_paths=known_paths)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Client-Id"],
        )
    return app


def _route_paths(routes: Iterable[Any]) -> Iterator[str]:
    # FastAPI keeps included routers as nodes; walk into them for the metrics' endpoint labels.
    for route in routes:
        if isinstance(route, Route):
            yield route.path
        elif (router := getattr(route, "original_router", None)) is not None:
            yield from _route_paths(router.routes)
        elif (children := getattr(route, "routes", None)) is not None:
            yield from _route_paths(children)
