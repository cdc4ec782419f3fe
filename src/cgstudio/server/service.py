"""What to generate, independent of dialect, and how to run it on a CodeModel.

Every kind goes through CodeModel's prompt builders and the one pipeline:
    fim     prompt + suffix (+ context files)      CodeModel.stream_complete   user text stays text
    plain   a continuation in cgstudio's template  CodeModel.stream_complete   user text stays text
    raw     a client-rendered prompt               CodeModel.stream_raw        control-token text -> tokens
    chat    messages                               CodeModel.stream_chat       user text stays text
    infill  llama.cpp /infill: FIM prompt, then the cursor line's text after the FIM middle token
            (CodeModel.prompt_complete + Vocab.plain, then CodeModel.run_prompt like the others)
The functions here run in worker threads (they tokenize and decode).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from cgstudio.core.errors import InvalidInputError
from cgstudio.core.prompt import ContextFile, GuardWarning, Prompt
from cgstudio.families import FOREIGN_FIM_MARKERS
from cgstudio.generation.pipeline import Chunk
from cgstudio.generation.stops import check_stop_strings
from cgstudio.server.registry import KEEP_DEFAULT, RouteTask
from cgstudio.session.model import CodeModel, check_text

Kind = Literal["fim", "plain", "raw", "chat", "infill"]
FILL_CONTEXT = -1  # max_tokens meaning "as much as fits" (llama.cpp n_predict -1, Ollama num_predict -1/-2)
# Marker texts that end the prefix part of a client-rendered FIM prompt (used to compare documents).
RAW_SUFFIX_MARKERS = FOREIGN_FIM_MARKERS


@dataclass
class GenSpec:
    """One generation request, whatever dialect it came in."""

    kind: Kind
    model: str | None = None
    prompt: str = ""  # prefix (fim, plain, infill), raw text (raw)
    suffix: str = ""
    middle: str = ""  # infill: text left of the cursor on its line, placed after the FIM middle token
    messages: list[dict[str, str]] | None = None
    files: tuple[ContextFile, ...] = ()
    path: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    guards: dict[str, Any] = field(default_factory=dict)
    prewarm: bool = False  # evaluate the prompt (fill the KV cache), return no text
    keep_alive: Any = KEEP_DEFAULT
    endpoint: str = ""

    @property
    def task(self) -> RouteTask:
        if self.kind in ("fim", "infill"):
            return "fim"
        return "chat" if self.kind == "chat" else "completion"

    @property
    def supersedable(self) -> bool:
        """Editor completions (one per keystroke) are superseded by the same client's next one."""
        return self.kind != "chat" and not self.prewarm

    @property
    def document_head(self) -> str:
        """The text before the cursor, to decide whether a new request edits the old one's document."""
        if self.kind == "raw":
            cut = min((i for m in RAW_SUFFIX_MARKERS if (i := self.prompt.find(m)) >= 0), default=-1)
            return self.prompt[:cut] if cut >= 0 else self.prompt
        return self.prompt + self.middle


def request_sampling(spec: GenSpec, model: CodeModel) -> dict[str, Any]:
    s = {k: v for k, v in spec.sampling.items() if v is not None}
    if s.get("max_tokens") is not None and s["max_tokens"] < 0:
        s["max_tokens"] = max(1, model.engine.n_ctx // 2)
    if spec.prewarm:
        s["max_tokens"] = 1  # the engine samples one token after the prompt; it is never decoded or shown
    return s


def build_prompt(spec: GenSpec, model: CodeModel) -> tuple[Prompt, str | None]:
    """The exact prompt (token ids) a spec produces, and the variant problem if any."""
    max_tokens = model.sampling(request_sampling(spec, model)).max_tokens
    if spec.kind == "raw":
        return model.prompt_raw(spec.prompt, max_tokens), None
    if spec.kind == "chat":
        return model.prompt_chat(spec.messages or [], max_tokens)
    if spec.kind == "infill":
        return _infill_prompt(spec, model, max_tokens)
    return model.prompt_complete(
        spec.prompt,
        spec.suffix if spec.kind == "fim" else "",
        spec.files,
        path=spec.path,
        max_tokens=max_tokens,
    )


def _infill_prompt(spec: GenSpec, model: CodeModel, max_tokens: int) -> tuple[Prompt, str | None]:
    prefix, middle = spec.prompt, check_text("prompt", spec.middle)
    if not prefix and not spec.suffix and not spec.files and middle:
        prefix, middle = middle, ""  # only the cursor line: it is the whole prefix
    if not prefix and not spec.suffix and not spec.files:
        raise InvalidInputError("input_prefix, input_suffix, prompt and input_extra are all empty")
    prompt, problem = model.prompt_complete(
        prefix, spec.suffix, spec.files, path=spec.path, max_tokens=max_tokens
    )
    if middle:
        # llama.cpp's /infill puts `prompt` after the middle token: the model continues the cursor line.
        prompt.tokens.extend(model.vocab.plain(middle))
        prompt.prefix_tail = (prefix + middle)[-2000:]
        if prompt.max_tokens is not None:
            prompt.max_tokens = max(1, min(prompt.max_tokens, model.engine.n_ctx - len(prompt.tokens) - 1))
    return prompt, problem


def open_stream(spec: GenSpec, model: CodeModel, cancel: threading.Event) -> Iterator[Chunk]:
    """The chunk iterator for ``spec``: CodeModel's stream methods; infill's own prompt via run_prompt."""
    sampling = request_sampling(spec, model)
    kw: dict[str, Any] = {"sampling": sampling, "guards": spec.guards or None, "cancel": cancel}
    if spec.kind == "raw":
        return model.stream_raw(spec.prompt, **kw)
    if spec.kind == "chat":
        return model.stream_chat(spec.messages or [], **kw)
    if spec.kind in ("fim", "plain"):
        suffix = spec.suffix if spec.kind == "fim" else ""
        return model.stream_complete(spec.prompt, suffix, spec.files, path=spec.path, **kw)
    prompt, problem = _infill_prompt(spec, model, model.sampling(sampling).max_tokens)
    return model.run_prompt(prompt, problem, **kw)


def describe_prompt(spec: GenSpec, model: CodeModel) -> dict[str, Any]:
    """The playground's "show prompt": text with special tokens spelled out, ids, mode and stops."""
    prompt, problem = build_prompt(spec, model)
    warnings = [w.as_dict() for w in prompt.warnings]
    if problem:
        warnings.insert(0, GuardWarning("variant_mismatch", problem).as_dict())
    stops = sorted(prompt.stop_ids)
    extra_stops = list(model.sampling(request_sampling(spec, model)).stop)
    return {
        "model": model.alias,
        "prompt_text": model.vocab.render(prompt.tokens),
        "prompt_tokens": prompt.tokens,
        "n_prompt_tokens": len(prompt.tokens),
        "mode": prompt.mode,
        "max_tokens": prompt.max_tokens,
        "n_ctx": model.engine.n_ctx,
        "stop": {
            "token_ids": stops,
            "tokens": [model.vocab.render([t]) for t in stops],
            "strings": [*prompt.stop_strings, *extra_stops],
        },
        "warnings": warnings,
    }


def clean_stop(stop: str | list[str] | None) -> list[str] | None:
    """Stop strings from a request (every dialect): one string or a list; empty strings are dropped.

    More than MAX_STOP_STRINGS strings, or one longer than MAX_STOP_CHARS, is a 400 that names the limit.
    """
    if stop is None:
        return None
    return check_stop_strings([stop] if isinstance(stop, str) else stop) or None


def clean_seed(seed: int | None) -> int | None:
    """Negative seeds mean random (llama.cpp's -1); large ones wrap to 32 bits."""
    if seed is None or seed < 0:
        return None
    return seed & 0xFFFFFFFF
