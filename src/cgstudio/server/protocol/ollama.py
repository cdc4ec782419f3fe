"""Ollama dialect: /api/generate, /api/chat, /api/tags, /api/show, /api/ps documents.

Streaming is on by default, as in Ollama (NDJSON). Durations are nanoseconds.
``raw: true`` (or ``template: "{{ .Prompt }}"``, Tabby's way) sends a client-rendered prompt
(control-token text becomes tokens); otherwise cgstudio applies its own template: ``suffix`` ->
FIM, no suffix -> chat on instruction-tuned models and a plain continuation on pretrained ones
(as Ollama's templates do). A prompt that holds a complete FIM template is FIM in both cases
(``GenerationRequest.fim_template``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from cgstudio.core.errors import InvalidInputError, UnsupportedModeError
from cgstudio.core.prompt import ChatMessage
from cgstudio.families import get as get_family
from cgstudio.generation.pipeline import Result
from cgstudio.server.protocol.common import (
    ContextChunk,
    FilePathText,
    OpenModel,
    WithGuards,
    timings_extra,
    warnings_extra,
)
from cgstudio.server.protocol.tools import ToolCallIn, ToolDef, history_calls
from cgstudio.server.registry import ModelEntry
from cgstudio.server.service import FILL_CONTEXT, clean_seed, clean_stop

OLLAMA_API_VERSION = "0.6.0"  # the Ollama API level these endpoints follow
FOREVER = "2318-01-01T00:00:00Z"  # Ollama's "never expires"
# The one template override served: the prompt itself ("{{ .Prompt }}", "{{- .Prompt -}}", ...).
PROMPT_ONLY = re.compile(r"\s*\{\{-?\s*\.Prompt\s*-?\}\}\s*")


class Options(OpenModel):
    """Ollama model options. Unlisted ones (num_thread, mirostat, ...) are accepted and ignored."""

    num_ctx: int | None = Field(
        None, ge=1, description="Ignored: the context is a load parameter (/admin/reload)."
    )
    num_predict: int | None = Field(None, ge=-2, description="Most tokens; -1 or -2 = as many as fit.")
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    top_k: int | None = Field(None, ge=0, le=1_000_000)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    repeat_last_n: int | None = Field(None, ge=0, le=4096)
    stop: str | list[str] | None = None
    seed: int | None = None

    def sampling(self) -> dict[str, Any]:
        n = self.num_predict
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
        }


class _Common(WithGuards):
    model: str | None = Field(None, description="A served alias (':latest' is ignored), or 'default'.")
    options: Options | None = None
    stream: bool = Field(True, description="NDJSON streaming, on by default as in Ollama.")
    keep_alive: str | float | None = Field(
        None, description="How long the model stays loaded: 5m, 30s, 0, -1."
    )
    format: str | dict[str, Any] | None = Field(None, description="Not supported (JSON mode).")

    def check_common(self) -> None:
        if self.format:
            raise UnsupportedModeError("format (JSON mode / structured output) is not supported")

    def sampling(self) -> dict[str, Any]:
        return self.options.sampling() if self.options else {}


class GenerateRequest(_Common):
    """POST /api/generate."""

    prompt: str = Field(
        "", description="Text before the cursor, the instruction, or (raw) a rendered prompt."
    )
    suffix: str | None = Field(None, description="Text after the cursor: fill in the middle.")
    system: str | None = Field(None, description="System message (non-raw, no suffix).")
    raw: bool = Field(False, description="The prompt is already rendered: control-token text becomes tokens.")
    template: str | None = Field(
        None, description='Only "{{ .Prompt }}": render the prompt verbatim, as raw: true does.'
    )
    images: list[str] | None = Field(None, description="Not supported.")
    filepath: FilePathText = Field(None, description="Extension: the current file's path (prompt path line).")
    context_files: list[ContextChunk] = Field(
        default_factory=list,
        description="Extension: other files to show the model, [{filename, text}]; a filename is a "
        "label, never a path cgstudio opens.",
    )

    def verbatim(self) -> bool:
        """Whether the prompt goes to the model as given: ``raw``, or the ``{{ .Prompt }}`` template.

        Any other template is a 400: cgstudio renders prompts from the model's own format."""
        if not self.template:
            return self.raw
        if PROMPT_ONLY.fullmatch(self.template) is None:
            raise UnsupportedModeError(
                f"template {self.template[:80]!r} is not supported: the only template override is "
                '"{{ .Prompt }}" (send the prompt as given, like raw: true). Render the prompt '
                "yourself and send it with raw: true, or drop template to use the model's own format."
            )
        return True


class OllamaMessage(OpenModel):
    role: str = Field(..., description="system, user, assistant or tool.")
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[ToolCallIn] | None = Field(None, description="assistant: the calls it made.")
    tool_name: str | None = Field(None, description="tool: the function whose result this is.")
    tool_call_id: str | None = None

    def message(self) -> ChatMessage:
        if self.images:
            raise UnsupportedModeError("images are not supported by code models")
        if self.role not in ("system", "user", "assistant", "tool"):
            raise InvalidInputError(
                f"chat role {self.role!r} is not supported; use system, user, assistant or tool"
            )
        calls = history_calls(self.tool_calls, "assistant message") if self.role == "assistant" else ()
        name, call_id = (self.tool_name, self.tool_call_id) if self.role == "tool" else (None, None)
        return ChatMessage(self.role, self.content, calls, call_id, name)  # type: ignore[arg-type]


class ChatRequest(_Common):
    """POST /api/chat."""

    messages: list[OllamaMessage] = Field(..., min_length=1)
    tools: list[ToolDef] | None = Field(None, description="Functions the model may call.")


class ShowRequest(OpenModel):
    model: str | None = Field(None, description="Alias to describe.")
    name: str | None = Field(None, description="Older clients' spelling of model.")


def iso(ts: float | None = None) -> str:
    dt = datetime.fromtimestamp(ts, UTC) if ts is not None else datetime.now(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ns(seconds: float) -> int:
    return max(0, int(seconds * 1e9))


def done_fields(result: Result, total_s: float, load_s: float) -> dict[str, Any]:
    t = result.timings
    return {
        "done": True,
        "done_reason": "length" if result.finish_reason == "length" else "stop",
        "total_duration": ns(total_s),
        "load_duration": ns(load_s),
        "prompt_eval_count": result.usage.prompt_tokens,
        "prompt_eval_duration": ns(t.prompt_eval_s),
        "eval_count": result.usage.completion_tokens,
        "eval_duration": ns(max(0.0, t.total_s - t.prompt_eval_s)),
        "timings": timings_extra(result, load_s),
        "warnings": warnings_extra(result),
    }


def param_size(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.0f}M" if n >= 1e6 else str(n)


def digest(entry: ModelEntry) -> str:
    # A stable stand-in for Ollama's manifest digest: cgstudio serves files, not manifests.
    m = entry.meta
    return hashlib.sha256(f"{entry.path}:{m.size_bytes}:{m.modified}".encode()).hexdigest()


def details(entry: ModelEntry) -> dict[str, Any]:
    m = entry.meta
    return {
        "parent_model": "",
        "format": "gguf",
        "family": m.family,
        "families": [m.family],
        # The size its makers gave (general.size_label): a file may hold more weights than the model
        # has, e.g. Qwen2.5-0.5B with its tied output matrix stored twice counts 630M.
        "parameter_size": m.size_label or param_size(m.n_params),
        "quantization_level": m.quantization,
    }


def tag_doc(entry: ModelEntry) -> dict[str, Any]:
    return {
        "name": entry.alias,
        "model": entry.alias,
        "modified_at": iso(entry.meta.modified),
        "size": entry.meta.size_bytes,
        "digest": digest(entry),
        "details": details(entry),
    }


def ps_doc(entry: ModelEntry) -> dict[str, Any]:
    on_gpu = entry.settings.load.n_gpu_layers != 0
    n_ctx = entry.model.engine.n_ctx if entry.model else entry.settings.load.n_ctx
    return {
        **tag_doc(entry),
        "expires_at": iso(entry.expires_wall) if entry.expires_wall else (iso() if entry.in_use else FOREVER),
        "size_vram": entry.meta.size_bytes if on_gpu else 0,
        "context_length": n_ctx,
    }


def template(entry: ModelEntry) -> str:
    """A Go template like Ollama's: FIM under ``.Suffix`` (clients look for it), else the prompt."""
    family = get_family(entry.meta.family)
    fim = family.fim
    plain = "{{ .Prompt }}"
    if entry.meta.variant == "instruction-tuned" and family.chat.ollama_template is not None:
        plain = family.chat.ollama_template
    if fim is None:
        return plain
    return (
        f"{{{{- if .Suffix }}}}{fim.prefix}{{{{ .Prompt }}}}{fim.suffix}{{{{ .Suffix }}}}{fim.middle}"
        f"{{{{- else }}}}{plain}{{{{- end }}}}"
    )


def show_doc(entry: ModelEntry) -> dict[str, Any]:
    m = entry.meta
    s = entry.settings
    caps = ["completion", "insert"] if m.fim else ["completion"]
    params = "\n".join(
        f"{k} {v}"
        for k, v in (
            ("temperature", s.sampling.temperature),
            ("top_k", s.sampling.top_k),
            ("top_p", s.sampling.top_p),
            ("num_ctx", s.load.n_ctx),
            ("num_predict", s.sampling.max_tokens),
        )
    )
    tmpl = template(entry)
    return {
        "license": "",
        "modelfile": f'# served by cgstudio\nFROM {entry.path}\nTEMPLATE """{tmpl}"""\n',
        "parameters": params,
        "template": tmpl,
        "details": details(entry),
        "model_info": {
            "general.architecture": m.architecture,
            "general.parameter_count": m.n_params,
            f"{m.architecture}.context_length": m.n_ctx_train,
            "cgstudio.family": m.family,
            "cgstudio.variant": m.variant,
        },
        "capabilities": caps,
        "modified_at": iso(m.modified),
    }
