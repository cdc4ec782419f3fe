"""A CodeModel over the remote engine, and the loader/inspector pair the server registry uses."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from cgstudio.api import CodeModel
from cgstudio.engine.base import Engine, ModelInfo
from cgstudio.engine.remote.config import UpstreamSettings
from cgstudio.engine.remote.engine import OpenAIEngine, model_info_for
from cgstudio.prompts.base import ChatMessage, ContextFile, GuardWarning, Prompt
from cgstudio.settings import Settings

ESTIMATE_WARNING = GuardWarning(
    "token_estimate",
    "no tokenizer for this model: token counts (context budget, truncation, usage) are estimates; "
    "pass --tokenizer PATH.gguf (the model's GGUF) for exact counts",
)


class RemoteCodeModel(CodeModel):
    """CodeModel whose prompts carry the ``token_estimate`` warning when counts are estimates."""

    def _mark(self, prompt: Prompt) -> Prompt:
        estimate = getattr(self.engine, "estimate", False)
        if estimate and all(w.code != "token_estimate" for w in prompt.warnings):
            prompt.warnings.append(ESTIMATE_WARNING)
        return prompt

    def prompt_complete(
        self,
        prefix: str,
        suffix: str = "",
        files: Iterable[ContextFile] = (),
        *,
        path: str | None = None,
        max_tokens: int | None = None,
    ) -> tuple[Prompt, str | None]:
        prompt, problem = super().prompt_complete(prefix, suffix, files, path=path, max_tokens=max_tokens)
        return self._mark(prompt), problem

    def prompt_chat(
        self, messages: Sequence[ChatMessage | Mapping[str, str]], max_tokens: int | None = None
    ) -> tuple[Prompt, str | None]:
        prompt, problem = super().prompt_chat(messages, max_tokens)
        return self._mark(prompt), problem

    def prompt_raw(self, text: str, max_tokens: int | None = None) -> Prompt:
        return self._mark(super().prompt_raw(text, max_tokens))

    def prompt_generate(
        self, request: str, language: str, *, explain: bool = False, max_tokens: int | None = None
    ) -> tuple[Prompt, str | None]:
        prompt, problem = super().prompt_generate(request, language, explain=explain, max_tokens=max_tokens)
        return self._mark(prompt), problem


def open_remote_model(upstream: UpstreamSettings, settings: Settings, alias: str = "") -> RemoteCodeModel:
    """Connect to ``upstream`` (UpstreamError when it must answer and does not) and wrap it."""
    engine = OpenAIEngine(upstream, n_ctx=settings.load.n_ctx)
    try:
        return RemoteCodeModel(engine, settings, alias or engine.info.name)
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


def remote_model_factory(engine: Engine, settings: Settings, alias: str) -> CodeModel:
    return RemoteCodeModel(engine, settings, alias)


__all__ = [
    "RemoteCodeModel",
    "open_remote_model",
    "remote_inspector",
    "remote_loader",
    "remote_model_factory",
]
