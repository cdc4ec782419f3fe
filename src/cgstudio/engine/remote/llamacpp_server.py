"""Text-prompt upstreams: llama-cpp-python's ``llama_cpp.server`` and any other OpenAI server.

These take ``prompt`` only as text and tokenize it WITH special-token parsing (llama_cpp.server
calls ``llama.tokenize(text, special=True)`` when no ``suffix`` is sent). So a prompt we built as
token ids must be rendered to text, and text a user typed that spells a control token
(the FIM suffix token, say) would become that token upstream. ``render_prompt`` renders, re-tokenizes
the text locally with special parsing, and refuses (400) when the special tokens differ from
ours: the upstream would read user text as control. A vLLM upstream takes token ids instead.

llama_cpp.server also adds BOS itself when the model wants one, so a leading BOS is left out
of the text. Its extras: ``POST /extras/tokenize`` {"input"} -> {"tokens"} (BOS included when
the model adds one) and ``POST /extras/detokenize`` {"tokens"} -> {"text"} (control tokens
left out).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from cgstudio.core.engine import SamplerConfig
from cgstudio.core.errors import InvalidInputError, UpstreamError
from cgstudio.engine.remote.dialect import Dialect
from cgstudio.engine.remote.tokenizer import Tokenizer

OPENAI_MAX_STOPS = 4  # OpenAI's /v1/completions takes at most four stop strings


class TextDialect(Dialect):
    """Any OpenAI-compatible /v1/completions: text prompt, standard parameters only."""

    name = "openai"
    token_prompts = False

    def prompt_field(self, prompt: Sequence[int] | str) -> str:
        if not isinstance(prompt, str):
            raise TypeError("text dialects send the rendered prompt text")
        return prompt

    def extra_fields(
        self, sampler: SamplerConfig, stop_ids: Sequence[int], stop_texts: Sequence[str]
    ) -> dict[str, Any]:
        return {"stop": list(stop_texts)[:OPENAI_MAX_STOPS]} if stop_texts else {}


class LlamaCppServerDialect(TextDialect):
    """llama-cpp-python's server: text prompts plus llama.cpp's sampling extensions."""

    name = "llama_cpp"
    tokenize_path = "/extras/tokenize"
    detokenize_path = "/extras/detokenize"
    tokenize_adds_bos = True

    def extra_fields(
        self, sampler: SamplerConfig, stop_ids: Sequence[int], stop_texts: Sequence[str]
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "top_k": sampler.top_k,
            "min_p": sampler.min_p,
            "repeat_penalty": sampler.repeat_penalty,
        }
        if stop_texts:
            # Control tokens that are not end-of-generation for llama.cpp end the text by spelling.
            fields["stop"] = list(stop_texts)
        return fields

    def tokenize_body(self, model: str, text: str) -> dict[str, Any]:
        return {"model": model, "input": text}

    def parse_text(self, doc: Any) -> str:
        text = doc.get("text") if isinstance(doc, dict) else None
        if not isinstance(text, str):
            raise UpstreamError("llama_cpp.server's /extras/detokenize answer has no text")
        return text


def render_prompt(tokenizer: Tokenizer, tokens: Sequence[int], protected: frozenset[int]) -> str:
    """Prompt text for a text-only upstream; raises InvalidInputError when user text spells control.

    ``protected`` are the special tokens user text may never produce (``Vocab.protected_ids``).
    Only the sequence of those is compared: ordinary text may re-tokenize differently across the
    joins of separately tokenized parts, which changes nothing the model is told.
    """
    info = tokenizer.info
    ids = list(tokens)
    if info.add_bos and ids and info.bos_id is not None and ids[0] == info.bos_id:
        ids = ids[1:]  # the upstream adds its own BOS
    text = tokenizer.detokenize(ids, special=True).decode("utf-8", errors="replace")
    again = tokenizer.tokenize(text, parse_special=True)
    ours = [t for t in ids if t in protected]
    theirs = [t for t in again if t in protected]
    if ours != theirs:
        extra = Counter(theirs) - Counter(ours)
        spelled = (
            ", ".join(tokenizer.piece(t, special=True).decode("utf-8", errors="replace") for t in extra)
            or "a special token"
        )
        raise InvalidInputError(
            "this upstream takes text prompts; the input contains special-token text "
            f"({spelled}) that it would parse as a control token; use a vLLM upstream "
            "(token-id prompts) or remove it"
        )
    return text


def stop_texts(tokenizer: Tokenizer, stop_ids: Sequence[int]) -> list[str]:
    """Spellings of the stop tokens other than EOS (which every upstream stops at anyway)."""
    info = tokenizer.info
    out = []
    for t in sorted(stop_ids):
        if t == info.eos_id:
            continue
        spelled = tokenizer.piece(t, special=True).decode("utf-8", errors="replace")
        if spelled:
            out.append(spelled)
    return out
