"""Mistral's FIM API: POST /v1/fim/completions (Codestral), as Continue's openai-adapters posts it.

``@continuedev/openai-adapters``' ``fimStream`` (packages/openai-adapters/src/apis/OpenAI.ts)
sends model, prompt (the text before the cursor), suffix, max_tokens, max_completion_tokens,
temperature, top_p, frequency_penalty, presence_penalty, stop and ``stream: true``, and reads
chat-shaped chunks (``choices[0].delta.content``, through ``fromChatCompletionChunk``). So the
answer has the shape of a chat completion, as Mistral's own API answers. Mistral clients may
also send ``random_seed`` and ``min_tokens``; ``min_tokens`` is accepted and ignored (an early
end is never forced on). The request runs on the same FIM path as ``/v1/completions`` with a
``suffix``, and follows the OpenAI routes' rule for model names.
"""

from __future__ import annotations

from pydantic import Field

from cgstudio.server.protocol.common import FilePathText, WithGuards
from cgstudio.server.protocol.openai import StreamOptions
from cgstudio.server.service import GenSpec, clean_seed, clean_stop


class FimRequest(WithGuards):
    """POST /v1/fim/completions: fill in the middle between ``prompt`` and ``suffix``."""

    model: str | None = Field(
        None,
        description="A served alias, or 'default' / absent to route by capability; another name is "
        "answered by a FIM model (model_substituted warning) unless --strict-model-names.",
    )
    prompt: str = Field(..., description="The text before the cursor.")
    suffix: str = Field("", description="The text after the cursor.")
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate [the profile's].")
    max_completion_tokens: int | None = Field(None, ge=1, description="max_tokens' newer name; wins.")
    min_tokens: int | None = Field(None, ge=0, description="Accepted and ignored.")
    temperature: float | None = Field(None, ge=0.0, le=5.0, description="0 = greedy.")
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    stop: str | list[str] | None = Field(None, description="Stop strings.")
    random_seed: int | None = Field(None, description="Reproducible sampling; negative = random.")
    seed: int | None = Field(None, description="random_seed's OpenAI name.")
    stream: bool = Field(False, description="Server-sent events of chat.completion.chunk documents.")
    stream_options: StreamOptions | None = None
    filepath: FilePathText = Field(None, description="Extension: the current file's path (prompt path line).")

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def to_spec(self) -> GenSpec:
        seed = self.random_seed if self.random_seed is not None else self.seed
        return GenSpec(
            "fim",
            model=self.model,
            unknown_model="fit",
            prompt=self.prompt,
            suffix=self.suffix,
            path=self.filepath,
            sampling={
                "max_tokens": self.max_completion_tokens or self.max_tokens,
                "temperature": self.temperature,
                "top_p": self.top_p,
                "stop": clean_stop(self.stop),
                "seed": clean_seed(seed),
            },
            endpoint="/v1/fim/completions",
        )
