"""llama.cpp server dialect: /infill, /completion, /tokenize, /detokenize, /apply-template.

Shapes follow llama.cpp's tools/server/README.md, as llama.vim and llama.vscode send them:
``/infill`` takes input_prefix (lines above the cursor), prompt (the cursor line up to the
cursor; placed after the FIM middle token), input_suffix, input_extra [{filename, text}] and
n_predict (or ``max_tokens``, as Twinny sends it; n_predict wins, as in llama-server).
``n_predict: 0`` with only input_extra pre-warms the KV cache. A ``model`` name that no served
model has is ignored, as llama-server ignores it (``model_substituted`` warning). ``n_indent`` and
``t_max_predict_ms`` stop generation as llama.cpp does (the time limit is checked on a token that
holds a new line, so the text ends with that line). ``t_max_prompt_ms``, which llama-server
parses but does not implement (a TODO in its server-schema.cpp at 0c1e570), is honoured: a prompt
still being evaluated after that long ends the request before it generates (``stop_type``
"limit", a ``prompt_time_limit`` warning), and the part evaluated stays cached; a pre-warm
(``n_predict: 0``, sent by llama.vim with ``t_max_prompt_ms: 1``) is all prompt, so it has no such
limit. -1 or 0 means no limit for both, as in llama-server. ``cache_prompt`` is always on (the
engine reuses the longest common prefix); ``samplers`` is accepted and ignored (the sampler order
is fixed). ``n_cmpl`` (llama.vscode sends 3) asks for several
suggestions decoded from one prompt evaluation; with more than one the answer is a list of
result objects, each with its ``index``, as llama-server answers, without repeated texts.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field

from cgstudio.core.errors import UnsupportedModeError
from cgstudio.generation.pipeline import Result
from cgstudio.server.protocol.common import (
    ContextChunk,
    FilePathText,
    OpenModel,
    WithGuards,
    context_files,
    timings_extra,
    warnings_extra,
)
from cgstudio.server.protocol.openai import ChatMessageIn
from cgstudio.server.service import FILL_CONTEXT, GenSpec, clean_seed, clean_stop

MAX_LIMIT_MS = 86_400_000  # a day: t_max_*_ms above it is a client bug, refused with a 400
STOP_TYPE = {"eos": "eos", "stop": "word", "length": "limit", "repetition": "word", "cancelled": "none"}


class _LlamaSampling(WithGuards):
    model: str | None = Field(
        None, description="Extension: a served alias; absent or unknown = route by capability."
    )
    n_predict: int | None = Field(
        None, ge=-1, description="Most tokens; -1 = as many as fit; 0 = pre-warm only."
    )
    max_tokens: int | None = Field(None, ge=-1, description="n_predict's other name; n_predict wins.")
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_k: int | None = Field(None, ge=0, le=1_000_000)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    repeat_last_n: int | None = Field(None, ge=0, le=4096)
    seed: int | None = Field(None, description="-1 = random.")
    stop: str | list[str] | None = None
    stream: bool = False
    n_indent: int = Field(0, ge=0, le=1000, description="Stop at a new line indented less than this.")
    t_max_predict_ms: int | None = Field(
        None,
        ge=-1,
        le=MAX_LIMIT_MS,
        strict=True,
        description="Milliseconds: a token with a new line that arrives later than this after the "
        "first one ends the text (after that line). -1 or 0 = no limit.",
    )
    t_max_prompt_ms: int | None = Field(
        None,
        ge=-1,
        le=MAX_LIMIT_MS,
        strict=True,
        description="Milliseconds: a prompt still being evaluated after this long ends the request "
        "before it generates (stop_type 'limit'); the evaluated part stays cached. Not applied to a "
        "pre-warm (n_predict 0). -1 or 0 = no limit.",
    )
    cache_prompt: bool = Field(True, description="Always on: the engine reuses the cached common prefix.")
    samplers: list[str] | None = Field(None, description="Accepted and ignored (fixed sampler order).")
    response_fields: list[str] | None = Field(
        None, description="Only these fields; 'a/b' lifts a nested field to the top as 'a/b'."
    )
    n_probs: int | None = Field(None, ge=0, description="Not supported (must be 0).")
    n_cmpl: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Suggestions from one prompt evaluation, at most the server's --parallel (fewer: "
        "n_reduced warning). More than one: the answer is a list, repeated texts dropped.",
    )

    @property
    def predict(self) -> int | None:
        """The token limit: n_predict, else max_tokens (llama-server's order)."""
        return self.n_predict if self.n_predict is not None else self.max_tokens

    def sampling(self) -> dict[str, Any]:
        n = self.predict
        return {
            "max_tokens": FILL_CONTEXT if n is not None and n < 0 else (n or None),
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
            "repeat_last_n": self.repeat_last_n,
            "stop": clean_stop(self.stop),
            "seed": clean_seed(self.seed),
            "n": self.n_cmpl,
            # A pre-warm (n_predict 0) is all prompt: a prompt budget would only cut it short.
            "t_max_prompt_ms": self.t_max_prompt_ms if n != 0 and (self.t_max_prompt_ms or 0) > 0 else None,
        }

    def check_common(self) -> None:
        if self.n_probs:
            raise UnsupportedModeError("n_probs (token probabilities) is not supported")


class InfillRequest(_LlamaSampling):
    """POST /infill."""

    input_prefix: str = Field("", description="Text before the cursor line.")
    input_suffix: str = Field("", description="Text after the cursor.")
    input_extra: list[ContextChunk] = Field(
        default_factory=list, description="Other files: [{filename, text}]."
    )
    prompt: str = Field(
        "", description="The cursor line left of the cursor; placed after the FIM middle token."
    )
    filepath: FilePathText = Field(None, description="Extension: the current file's path (prompt path line).")
    context_files: list[ContextChunk] = Field(
        default_factory=list,
        description="Extension: other files to show the model, [{filename, text}]; a filename is a "
        "label, never a path cgstudio opens.",
    )

    def to_spec(self) -> GenSpec:
        self.check_common()
        return GenSpec(
            "infill",
            model=self.model,
            prompt=self.input_prefix,
            suffix=self.input_suffix,
            middle=self.prompt,
            files=context_files([*self.input_extra, *self.context_files]),
            path=self.filepath,
            sampling=self.sampling(),
            unknown_model="any",
            prewarm=self.predict == 0,
            endpoint="/infill",
        )


class CompletionRequest(_LlamaSampling):
    """POST /completion: a raw prompt; control-token text becomes control tokens."""

    prompt: str = Field(..., description="The rendered prompt.")

    def to_spec(self) -> GenSpec:
        self.check_common()
        return GenSpec(
            "raw",
            model=self.model,
            prompt=self.prompt,
            sampling=self.sampling(),
            unknown_model="any",
            prewarm=self.predict == 0,
            endpoint="/completion",
        )


class TokenizeRequest(OpenModel):
    model: str | None = None
    content: str = Field(..., description="Text to tokenize.")
    add_special: bool = Field(False, description="Prepend BOS when the model wants one.")
    parse_special: bool = Field(True, description="Special-token text becomes the special token (raw).")
    with_pieces: bool = Field(False, description="Return [{id, piece}] instead of ids.")


class DetokenizeRequest(OpenModel):
    model: str | None = None
    tokens: list[int] = Field(..., description="Token ids; special tokens are spelled out.")


class ApplyTemplateRequest(OpenModel):
    model: str | None = None
    messages: list[ChatMessageIn] = Field(..., min_length=1, description="[{role, content}].")


class LineLimits:
    """llama.cpp's n_indent and t_max_predict_ms, applied to streamed text as it arrives."""

    def __init__(self, n_indent: int, t_max_predict_ms: int | None) -> None:
        self.n_indent = n_indent
        self.t_max_s = t_max_predict_ms / 1000 if t_max_predict_ms and t_max_predict_ms > 0 else None
        self.text = ""
        self.stopped = False
        self._t_first: float | None = None
        self._line = -1  # start of the line being checked; -1 until the first new line

    def feed(self, piece: str) -> str:
        """Add generated text; return the part to keep. After a stop, nothing more is kept."""
        if self.stopped or not piece:
            return ""
        start = len(self.text)
        self.text += piece
        if self._t_first is None:
            self._t_first = time.perf_counter()
        keep = len(self.text)
        if self.n_indent > 0:
            cut = self._indent_cut()
            if cut is not None:
                keep, self.stopped = max(cut, start), True
                self.text = self.text[:keep]
        # As llama-server: checked only on a piece that holds a new line, so the text ends there.
        if (
            not self.stopped
            and self.t_max_s is not None
            and "\n" in self.text[start:keep]
            and time.perf_counter() - self._t_first > self.t_max_s
        ):
            self.stopped = True
        return self.text[start:keep]

    def _indent_cut(self) -> int | None:
        text = self.text
        while True:
            if self._line < 0:
                nl = text.find("\n")
                if nl < 0:
                    return None
                self._line = nl + 1
            pos = self._line
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            if pos >= len(text):
                return None  # the new line has no content yet
            if text[pos] != "\n" and pos - self._line < self.n_indent:
                return pos
            nl = text.find("\n", self._line)
            if nl < 0:
                return None
            self._line = nl + 1


class ChoiceLimits:
    """A ``LineLimits`` per choice; ``stopped`` once every one of the ``n`` choices asked for stopped."""

    def __init__(self, n_indent: int, t_max_predict_ms: int | None, n: int) -> None:
        self._args = (n_indent, t_max_predict_ms)
        self._n = n
        self._limits: dict[int, LineLimits] = {}

    def of(self, index: int) -> LineLimits:
        return self._limits.setdefault(index, LineLimits(*self._args))

    @property
    def stopped(self) -> bool:
        return len(self._limits) >= self._n and all(lim.stopped for lim in self._limits.values())


def final_doc(
    model: str,
    content: str,
    result: Result,
    load_s: float,
    *,
    limited: bool,
    generation_settings: dict[str, Any],
    index: int = 0,
) -> dict[str, Any]:
    t = result.timings
    gen_s = max(0.0, t.total_s - t.prompt_eval_s)
    n_pred = result.usage.completion_tokens
    return {
        "index": index,
        "content": content,
        "tokens": [],
        "id_slot": 0,
        "stop": True,
        "model": model,
        "tokens_predicted": n_pred,
        "tokens_evaluated": result.usage.prompt_tokens,
        "generation_settings": generation_settings,
        "has_new_line": "\n" in content,
        "truncated": any(w.code == "prompt_truncated" for w in result.warnings),
        "stop_type": "limit" if limited else STOP_TYPE.get(result.finish_reason, "none"),
        "stopping_word": "",
        "tokens_cached": t.prompt_tokens_reused,
        "timings": {
            "prompt_n": t.prompt_tokens_evaluated,
            "prompt_ms": t.prompt_eval_s * 1000,
            "prompt_per_token_ms": (
                t.prompt_eval_s * 1000 / t.prompt_tokens_evaluated if t.prompt_tokens_evaluated else None
            ),
            "prompt_per_second": t.prompt_tokens_per_s,
            "predicted_n": n_pred,
            "predicted_ms": gen_s * 1000,
            "predicted_per_token_ms": gen_s * 1000 / n_pred if n_pred else None,
            "predicted_per_second": t.generation_tokens_per_s,
        },
        "cgstudio_timings": timings_extra(result, load_s),
        "warnings": warnings_extra(result),
    }


def partial_doc(content: str, index: int = 0) -> dict[str, Any]:
    return {"index": index, "content": content, "tokens": [], "stop": False, "id_slot": 0}


def select_fields(doc: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """llama.cpp's response_fields: keep the named fields; 'a/b' is looked up nested, keyed 'a/b'."""
    if not fields:
        return doc
    out: dict[str, Any] = {}
    for path in fields:
        cur: Any = doc
        for part in path.split("/"):
            if not isinstance(cur, dict) or part not in cur:
                break
            cur = cur[part]
        else:
            out[path] = cur
    return out
