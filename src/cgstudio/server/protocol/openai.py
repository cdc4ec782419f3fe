"""OpenAI dialect: /v1/completions and /v1/chat/completions requests and response documents.

Extras ride in fields normal clients ignore: ``timings`` and ``warnings``. Unsupported
options that would change the answer (logprobs, echo, best_of > 1, logit_bias) are a clear 400;
options that do not matter here (user, penalties, store, ...) are ignored. ``n`` choices are
decoded together from one prompt evaluation (see ``_Sampling.n``).
``tools`` and ``tool_choice``: server/protocol/tools.py.
``n_predict`` is honoured as llama-server honours it (it wins over max_tokens; 0 = pre-warm: the
prompt is evaluated into the cache and the answer is empty). A ``model`` name that no served
model has is answered by a model that fits the request, with a ``model_substituted`` warning
(404 when none fits, or with --strict-model-names).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from cgstudio.core.errors import InvalidInputError, UnsupportedModeError
from cgstudio.core.prompt import ChatMessage
from cgstudio.generation.pipeline import Result
from cgstudio.server.protocol.common import (
    ContextChunk,
    FilePathText,
    OpenModel,
    WithGuards,
    context_files,
    one_prompt,
    timings_extra,
    warnings_extra,
)
from cgstudio.server.protocol.tools import (
    ToolCallIn,
    ToolChoiceIn,
    ToolDef,
    history_calls,
    openai_calls,
    tool_specs,
)
from cgstudio.server.service import FILL_CONTEXT, GenSpec, clean_seed, clean_stop

FINISH = {
    "eos": "stop",
    "stop": "stop",
    "length": "length",
    "repetition": "stop",
    "cancelled": "stop",
    "tool_calls": "tool_calls",
}


class StreamOptions(OpenModel):
    include_usage: bool = Field(False, description="Send usage in a last chunk before [DONE].")


class _Sampling(WithGuards):
    model: str | None = Field(
        None,
        description="A served alias, or 'default' / absent to route by capability. Another name is "
        "answered by a model that fits the request (model_substituted warning), unless "
        "--strict-model-names.",
    )
    max_tokens: int | None = Field(None, ge=1, description="Most tokens to generate [the profile's, 256].")
    n_predict: int | None = Field(
        None,
        ge=-1,
        description="Extension (llama-server): most tokens, over max_tokens; -1 = as many as fit; "
        "0 = pre-warm (evaluate the prompt into the cache, answer with nothing).",
    )
    temperature: float | None = Field(None, ge=0.0, le=5.0, description="0 = greedy [0.2].")
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0, le=1_000_000, description="Extension (llama.cpp); 0 = off.")
    min_p: float | None = Field(None, ge=0.0, le=1.0, description="Extension (llama.cpp).")
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0, description="Extension (llama.cpp).")
    stop: str | list[str] | None = Field(None, description="Stop strings.")
    seed: int | None = Field(None, description="Reproducible sampling; negative = random.")
    stream: bool = Field(False, description="Server-sent events.")
    stream_options: StreamOptions | None = None
    n: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Choices, decoded together from one prompt evaluation: at most the server's "
        "--parallel (fewer come back with an n_reduced warning). Without stream, choices whose text "
        "repeats an earlier one are dropped (duplicates_dropped warning).",
    )
    logit_bias: dict[str, float] | None = Field(None, description="Not supported (must be empty).")

    def sampling(self, max_tokens: int | None = None) -> dict[str, Any]:
        n = self.n_predict
        if n is not None:  # llama-server reads n_predict before max_tokens
            max_tokens = FILL_CONTEXT if n < 0 else (n or None)
        return {
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "stop": clean_stop(self.stop),
            "seed": clean_seed(self.seed),
            "n": self.n,
        }

    def check_common(self) -> None:
        if self.logit_bias:
            raise UnsupportedModeError("logit_bias is not supported; remove it")

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class CompletionRequest(_Sampling):
    """POST /v1/completions. ``suffix`` present -> fill in the middle; absent -> raw continuation."""

    prompt: str | list[str] = Field(..., description="Text before the cursor, or a client-rendered prompt.")
    suffix: str | None = Field(None, description="Text after the cursor; present = FIM.")
    filepath: FilePathText = Field(None, description="Extension: the current file's path (prompt path line).")
    context_files: list[ContextChunk] = Field(
        default_factory=list,
        description="Extension: other files to show the model, [{filename, text}]; a filename is a "
        "label, never a path cgstudio opens.",
    )
    echo: bool | None = Field(None, description="Not supported.")
    best_of: int | None = Field(None, ge=1, le=128, description="Only 1 is supported.")
    logprobs: int | None = Field(None, ge=0, le=20, description="Not supported.")

    def to_spec(self) -> GenSpec:
        self.check_common()
        if self.logprobs:
            raise UnsupportedModeError("logprobs are not supported; remove the logprobs option")
        if self.echo:
            raise UnsupportedModeError("echo is not supported")
        if self.best_of not in (None, 1):
            raise UnsupportedModeError("best_of > 1 is not supported")
        prompt = one_prompt(self.prompt)
        if self.suffix is not None:
            return GenSpec(
                "fim",
                model=self.model,
                prompt=prompt,
                suffix=self.suffix,
                files=context_files(self.context_files),
                path=self.filepath,
                sampling=self.sampling(),
                unknown_model="fit",
                prewarm=self.n_predict == 0,
                endpoint="/v1/completions",
            )
        return GenSpec(
            "raw",
            model=self.model,
            prompt=prompt,
            files=context_files(self.context_files),
            path=self.filepath,
            sampling=self.sampling(),
            unknown_model="fit",
            prewarm=self.n_predict == 0,
            endpoint="/v1/completions",
        )


class ContentPart(OpenModel):
    type: str = "text"
    text: str | None = None


class ChatMessageIn(OpenModel):
    role: str = Field(..., description="system, developer, user, assistant or tool.")
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallIn] | None = Field(None, description="assistant: the calls it made.")
    tool_call_id: str | None = Field(None, description="tool: the call this message answers.")
    name: str | None = None


class ChatRequest(_Sampling):
    """POST /v1/chat/completions."""

    messages: list[ChatMessageIn] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = Field(None, description="Not supported.")
    tools: list[ToolDef] | None = Field(None, description="Functions the model may call.")
    tool_choice: ToolChoiceIn | None = Field(
        None, description="auto (default), none, required, or {'type': 'function', 'function': {'name'}}."
    )
    parallel_tool_calls: bool | None = Field(None, description="Accepted; a reply may hold several calls.")
    response_format: dict[str, Any] | None = Field(None, description="Only {'type': 'text'}.")

    def to_spec(self) -> GenSpec:
        self.check_common()
        if self.logprobs:
            raise UnsupportedModeError("logprobs are not supported; remove the logprobs option")
        tools, choice = tool_specs(self.tools, self.tool_choice)
        if tools and self.n not in (None, 1):
            raise UnsupportedModeError("n > 1 with tools is not supported: send one request per choice")
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise UnsupportedModeError("response_format other than text (JSON mode) is not supported")
        messages = [chat_message(m) for m in self.messages]
        return GenSpec(
            "chat",
            model=self.model,
            messages=messages,
            tools=tools,
            tool_choice=choice,
            sampling=self.sampling(self.max_completion_tokens),
            unknown_model="fit",
            prewarm=self.n_predict == 0,
            endpoint="/v1/chat/completions",
        )


def chat_message(m: ChatMessageIn) -> ChatMessage:
    role = "system" if m.role == "developer" else m.role
    if role not in ("system", "user", "assistant", "tool"):
        raise InvalidInputError(f"chat role {m.role!r} is not supported; use system, user, assistant or tool")
    if m.content is None:
        text = ""
    elif isinstance(m.content, str):
        text = m.content
    else:
        if any(p.type != "text" for p in m.content):
            raise UnsupportedModeError("only text content parts are supported (no images or audio)")
        text = "".join(p.text or "" for p in m.content)
    calls = history_calls(m.tool_calls, f"{role} message") if role == "assistant" else ()
    return ChatMessage(role, text, calls, m.tool_call_id if role == "tool" else None, m.name)  # type: ignore[arg-type]


def usage_doc(result: Result, choices: Sequence[Result] = ()) -> dict[str, int]:
    """The prompt counted once (n choices share its evaluation), every choice's completion."""
    prompt = result.usage.prompt_tokens
    completion = sum(r.usage.completion_tokens for r in choices or [result])
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion_doc(
    cid: str, created: int, model: str, result: Result, load_s: float, choices: Sequence[Result] = ()
) -> dict[str, Any]:
    """The response; ``choices`` (n > 1) are every choice's result, ``result`` the first's."""
    return {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "text": r.text,
                "index": i,
                "logprobs": None,
                "finish_reason": FINISH.get(r.finish_reason, "stop"),
            }
            for i, r in enumerate(choices or [result])
        ],
        "usage": usage_doc(result, choices),
        "timings": timings_extra(result, load_s),
        "warnings": warnings_extra(result),
    }


def completion_chunk(
    cid: str, created: int, model: str, text: str, finish: str | None = None, index: int = 0
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [{"text": text, "index": index, "logprobs": None, "finish_reason": finish}],
    }


def chat_doc(
    cid: str, created: int, model: str, result: Result, load_s: float, choices: Sequence[Result] = ()
) -> dict[str, Any]:
    """The response; ``choices`` (n > 1) are every choice's result, ``result`` the first's."""
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "message": _message(r),
                "logprobs": None,
                "finish_reason": FINISH.get(r.finish_reason, "stop"),
            }
            for i, r in enumerate(choices or [result])
        ],
        "usage": usage_doc(result, choices),
        "timings": timings_extra(result, load_s),
        "warnings": warnings_extra(result),
    }


def chat_chunk(
    cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None, index: int = 0
) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _message(r: Result) -> dict[str, Any]:
    if not r.tool_calls:
        return {"role": "assistant", "content": r.text}
    return {"role": "assistant", "content": r.text or None, "tool_calls": openai_calls(r.tool_calls)}
