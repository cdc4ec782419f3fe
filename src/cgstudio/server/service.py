"""The server's request: a ``GenerationRequest`` plus what only the transport needs.

Dialects (server/protocol/*, server/routes/*) translate their bodies into a ``GenSpec``. Its
generation part (mode, prompt/suffix/middle/messages/files, sampling, guards) is the one
request type of ``cgstudio.generation.request``, run by ``CodeModel.stream`` like every other
face; the fields added here are the served model's name and what an unknown name does, keep_alive,
the endpoint and prewarm.
The functions here run in worker threads (they tokenize and decode).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cgstudio.core.engine import Priority
from cgstudio.core.prompt import GuardWarning, Prompt
from cgstudio.families import FOREIGN_FIM_MARKERS
from cgstudio.generation.pipeline import Chunk
from cgstudio.generation.request import GenerationRequest
from cgstudio.generation.stops import check_stop_strings
from cgstudio.generation.timings import Usage
from cgstudio.server.registry import KEEP_DEFAULT, UnknownName
from cgstudio.session.model import CodeModel

FILL_CONTEXT = -1  # max_tokens meaning "as much as fits" (llama.cpp n_predict -1, Ollama num_predict -1/-2)
# Marker texts that end the prefix part of a client-rendered FIM prompt (used to compare documents).
RAW_SUFFIX_MARKERS = FOREIGN_FIM_MARKERS


@dataclass
class GenSpec(GenerationRequest):
    """One generation request as a dialect received it: the request, and its transport."""

    model: str | None = None  # the name the client asked for (None: the default model)
    unknown_model: UnknownName = "refuse"  # the dialect's rule for a name no served model has
    prewarm: bool = False  # evaluate the prompt (fill the KV cache), return no text
    keep_alive: Any = KEEP_DEFAULT
    endpoint: str = ""

    @property
    def supersedable(self) -> bool:
        """Editor completions (one per keystroke) are superseded by the same client's next one."""
        return self.mode != "chat" and not self.prewarm

    @property
    def admission_priority(self) -> Priority:
        """The fair queue's class: ``priority_class``, but a pre-warm waits with chat."""
        return Priority.NORMAL if self.prewarm and self.priority is None else self.priority_class

    @property
    def document_head(self) -> str:
        """The text before the cursor, to decide whether a new request edits the old one's document."""
        if (template := self.fim_template) is not None:
            return template.preamble + template.prefix + template.middle
        if self.mode == "raw":
            cut = min((i for m in RAW_SUFFIX_MARKERS if (i := self.prompt.find(m)) >= 0), default=-1)
            return self.prompt[:cut] if cut >= 0 else self.prompt
        return self.prompt + self.middle

    def generation(self) -> GenerationRequest:
        """The request the model runs: a prewarm asks for one token (sampled, never decoded or shown)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(GenerationRequest)}
        if self.prewarm:
            fields["sampling"] = {**self.sampling, "max_tokens": 1, "n": 1}
            fields["priority"] = Priority.NORMAL  # filling the cache ahead of time: no one waits on it
        return GenerationRequest(**fields)


def build_prompt(spec: GenSpec, model: CodeModel) -> tuple[Prompt, str | None]:
    """The exact prompt (token ids) a spec produces, and the variant problem if any."""
    return model.prompt(spec.generation())


def open_stream(
    spec: GenSpec,
    model: CodeModel,
    cancel: threading.Event,
    on_prompt: Callable[[Prompt], None] | None = None,
) -> Iterator[Chunk]:
    """The chunk iterator for ``spec``: ``CodeModel.stream``, the one run path. ``on_prompt`` sees
    the built prompt before its evaluation (the job's progress)."""
    chunks = model.stream(spec.generation(), cancel=cancel, on_prompt=on_prompt)
    return _prewarm_only(chunks) if spec.prewarm else chunks


def _prewarm_only(chunks: Iterator[Chunk]) -> Iterator[Chunk]:
    """A prewarm's stream: no text, and a result that reports what the client got (no tokens).

    The one token sampled to finish the prompt's evaluation is neither shown nor counted, as
    llama-server's ``n_predict: 0`` answers with empty content.
    """
    for chunk in chunks:
        if chunk.result is not None:
            r = chunk.result
            usage = Usage(r.usage.prompt_tokens, 0)
            yield Chunk("", result=dataclasses.replace(r, text="", usage=usage), stats=chunk.stats)


def describe_prompt(spec: GenSpec, model: CodeModel) -> dict[str, Any]:
    """The playground's "show prompt": text with special tokens spelled out, ids, mode and stops."""
    prompt, problem = build_prompt(spec, model)
    warnings = [w.as_dict() for w in prompt.warnings]
    if problem:
        warnings.insert(0, GuardWarning("variant_mismatch", problem).as_dict())
    stops = sorted(prompt.stop_ids)
    extra_stops = list(model.sampling(spec.generation().sampling).stop)
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
        "context": [c.as_dict() for c in prompt.context],
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
