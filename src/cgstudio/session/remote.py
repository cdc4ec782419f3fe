"""Models behind a remote OpenAI-compatible upstream: the CodeModel over ``OpenAIEngine`` and the
loader/inspector pair the server registry uses. The engine reports whether its token counts are
exact (``Engine.exact_token_counts``); CodeModel warns when they are estimates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cgstudio.core.engine import Engine, ModelInfo
from cgstudio.core.settings import Settings
from cgstudio.engine.remote.config import UpstreamSettings
from cgstudio.engine.remote.engine import OpenAIEngine, model_info_for
from cgstudio.session.model import CodeModel


def open_remote_model(upstream: UpstreamSettings, settings: Settings, alias: str = "") -> CodeModel:
    """Connect to ``upstream`` (UpstreamError when it must answer and does not) and wrap it."""
    engine = OpenAIEngine(upstream, n_ctx=settings.load.n_ctx)
    try:
        return CodeModel(engine, settings, alias or engine.info.name)
    except BaseException:
        engine.close()
        raise


def remote_loader(upstream: UpstreamSettings) -> Callable[[Path, Settings], Engine]:
    def load(path: Path, settings: Settings) -> Engine:
        return OpenAIEngine(upstream, n_ctx=settings.load.n_ctx)

    return load


def remote_inspector(upstream: UpstreamSettings) -> Callable[[Path], ModelInfo]:
    def inspect(path: Path) -> ModelInfo:
        return model_info_for(upstream)

    return inspect


__all__ = ["open_remote_model", "remote_inspector", "remote_loader"]
