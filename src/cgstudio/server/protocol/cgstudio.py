"""cgstudio's own endpoints: the prompt preview and the admin reload."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from cgstudio.generation.request import RequestMode
from cgstudio.server.protocol.common import ContextChunk, FilePathText, OpenModel, WithGuards, context_files
from cgstudio.server.protocol.openai import ChatMessageIn, chat_message
from cgstudio.server.service import GenSpec, clean_stop


class PromptRequest(WithGuards):
    """POST /v1/prompt: what a request would send to the model, without generating.

    messages -> chat; input_prefix/input_suffix -> llama.cpp infill (``prompt`` is the cursor line);
    suffix -> FIM; raw: false -> cgstudio's plain continuation; otherwise a raw prompt.
    """

    model: str | None = Field(None, description="A served alias, or absent/'default' to route.")
    prompt: str = Field("", description="Prefix, raw prompt, or (infill) the cursor line.")
    suffix: str | None = Field(None, description="Text after the cursor: FIM.")
    messages: list[ChatMessageIn] | None = Field(None, description="Chat messages.")
    raw: bool | None = Field(None, description="false: template the prompt as a plain continuation.")
    filepath: FilePathText = Field(None, description="The current file's path (prompt path line).")
    input_prefix: str | None = None
    input_suffix: str | None = None
    input_extra: list[ContextChunk] = Field(default_factory=list, description="Context files.")
    context_files: list[ContextChunk] = Field(
        default_factory=list,
        description="Extension: other files to show the model, [{filename, text}]; a filename is a "
        "label, never a path cgstudio opens.",
    )
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None

    def to_spec(self) -> GenSpec:
        sampling: dict[str, Any] = {"max_tokens": self.max_tokens, "stop": clean_stop(self.stop)}
        files = context_files([*self.input_extra, *self.context_files])
        if self.messages is not None:
            return GenSpec(
                "chat", model=self.model, messages=[chat_message(m) for m in self.messages], sampling=sampling
            )
        if self.input_prefix is not None or self.input_suffix is not None:
            return GenSpec(
                "infill",
                model=self.model,
                prompt=self.input_prefix or "",
                suffix=self.input_suffix or "",
                middle=self.prompt,
                files=files,
                path=self.filepath,
                sampling=sampling,
            )
        if self.suffix is not None:
            return GenSpec(
                "fim",
                model=self.model,
                prompt=self.prompt,
                suffix=self.suffix,
                files=files,
                path=self.filepath,
                sampling=sampling,
            )
        mode: RequestMode = "plain" if self.raw is False else "raw"
        return GenSpec(
            mode, model=self.model, prompt=self.prompt, files=files, path=self.filepath, sampling=sampling
        )


class ReloadRequest(OpenModel):
    """POST /admin/reload: new load parameters (LoadProfile fields) merged over the current ones."""

    model: str | None = Field(None, description="Alias to reload; absent = the default model.")
    load: dict[str, Any] = Field(
        default_factory=dict, description="e.g. {'n_ctx': 4096, 'flash_attn': true}."
    )
