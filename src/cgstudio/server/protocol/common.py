"""Shared pieces of the dialects: the open base model, extras (timings, warnings), SSE/NDJSON lines."""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from cgstudio.core.errors import InvalidInputError
from cgstudio.core.prompt import ContextFile
from cgstudio.generation.pipeline import Result
from cgstudio.session.model import check_text


class OpenModel(BaseModel):
    """Request bodies accept unknown fields (clients send many); they are ignored unless read."""

    model_config = ConfigDict(extra="allow")


class GuardOverrides(BaseModel):
    """Extension: per-request guard settings (cgstudio.core.settings.GuardSettings); unset = server's."""

    model_config = ConfigDict(extra="forbid")

    repetition: bool | None = Field(None, description="Stop loops early (finish_reason 'repetition').")
    repetition_min_lines: int | None = Field(None, ge=2, le=10_000)
    repetition_block_repeats: int | None = Field(None, ge=2, le=10_000)
    repetition_shape_lines: int | None = Field(None, ge=2, le=10_000)
    strict: bool | None = Field(None, description="Variant mismatches are errors (400), not warnings.")
    fim_stop_at_suffix: bool | None = None
    fim_single_line: bool | None = None
    fim_block_end: bool | None = Field(None, description="Editor endings: stop at the cursor block's end.")
    fim_line_end: bool | None = Field(None, description="Editor endings: mid-line, complete the line only.")
    fim_bracket_overlap: bool | None = Field(
        None, description="Editor endings: never re-type a closing bracket or quote the suffix has."
    )
    fim_token_healing: bool | None = Field(None, description="Editor endings: token healing at the cursor.")
    fim_cursor_line_in_middle: bool | None = Field(
        None, description="Editor paths: the cursor line's start goes after the FIM middle token."
    )
    fim_suffix_tokens: int | None = Field(
        None, ge=0, le=1_048_576, description="Editor paths: at most this many suffix tokens (0: all)."
    )
    fim_prefix_tokens: int | None = Field(
        None, ge=0, le=1_048_576, description="Editor paths: about this many prefix tokens (0: all)."
    )
    fim_prefix_share: float | None = Field(None, gt=0.0, lt=1.0)
    variant: Literal["auto", "pretrained", "instruction-tuned"] | None = None


class WithGuards(OpenModel):
    guards: GuardOverrides | None = Field(None, description="Extension: guard settings for this request.")

    def guard_overrides(self) -> dict[str, Any]:
        return self.guards.model_dump(exclude_none=True) if self.guards else {}


def _path_text(value: str | None) -> str | None:
    # A file path goes into the prompt's path line: a NUL is refused as in the prompt itself
    # (check_text: 400 invalid_input), here at the edge.
    return None if value is None else check_text("filepath", value)


def _filename_text(value: str) -> str:
    return check_text("input_extra filename", value)


FilePathText = Annotated[str | None, AfterValidator(_path_text)]


class ContextChunk(OpenModel):
    """A context file for multi-file FIM (llama.cpp's input_extra shape)."""

    filename: Annotated[str, AfterValidator(_filename_text)] = Field(
        "", description="Path of the file, shown to the model."
    )
    text: str = Field("", description="The file's text (or the excerpt to show).")


def context_files(chunks: list[ContextChunk] | None) -> tuple[ContextFile, ...]:
    return tuple(ContextFile(c.filename or "context", c.text) for c in chunks or () if c.text)


def timings_extra(result: Result, load_s: float = 0.0) -> dict[str, Any]:
    """The ``timings`` extension field: "thought for" (time to first token) and the two rates."""
    t = result.timings
    return {
        "thought_for_s": t.time_to_first_token_s,
        "time_to_first_token_s": t.time_to_first_token_s,
        "prompt_tokens_per_s": t.prompt_tokens_per_s,
        "generation_tokens_per_s": t.generation_tokens_per_s,
        "total_s": t.total_s,
        "prompt_eval_s": t.prompt_eval_s,
        "prompt_tokens_evaluated": t.prompt_tokens_evaluated,
        "prompt_tokens_reused": t.prompt_tokens_reused,
        "draft_tokens": t.draft_tokens,
        "draft_tokens_accepted": t.draft_tokens_accepted,
        "context_tokens": t.context_tokens,
        "context_tokens_reused": t.context_tokens_reused,
        "source": t.source,
        "finish_reason": result.finish_reason,
        "stop_rule": result.stop_rule,
        "load_s": load_s,
    }


def warnings_extra(result: Result) -> list[dict[str, str]]:
    return [w.as_dict() for w in result.warnings]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now_s() -> int:
    return int(time.time())


def dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def sse(doc: Any) -> str:
    return f"data: {dumps(doc)}\n\n"


SSE_DONE = "data: [DONE]\n\n"


def ndjson(doc: Any) -> str:
    return dumps(doc) + "\n"


def one_prompt(prompt: str | list[str]) -> str:
    if isinstance(prompt, str):
        return prompt
    if len(prompt) == 1:
        return prompt[0]
    raise InvalidInputError(
        f"got {len(prompt)} prompts; cgstudio takes one prompt per request (send them one by one)"
    )
