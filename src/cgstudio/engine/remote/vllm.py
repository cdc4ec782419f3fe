"""vLLM's OpenAI server as an engine: prompts go as token ids, so user text can never become control.

cgstudio renders every format (FIM, chat, plain) into token ids with ``Vocab``: user text is
tokenized with special-token parsing off and special tokens are inserted by id. vLLM's
``/v1/completions`` accepts ``prompt`` as a list of token ids and then runs no tokenizer at all
(no BOS is added, nothing is parsed), so the ids we built are exactly what the model sees.
Sending text instead would let vLLM's HF tokenizer turn a FIM or turn token typed by a user into
the control token.

The request shape, from vLLM's documentation and source:
  * Completions API, ``prompt: list[int]`` (token-id prompts; ``suffix`` is not supported) and the
    extra sampling parameters ``top_k``, ``min_p``, ``repetition_penalty``, ``stop_token_ids``:
    https://docs.vllm.ai/en/stable/serving/openai_compatible_server.html
    (token-id prompts were added in https://github.com/vllm-project/vllm/pull/715)
  * ``SamplingParams``: ``stop_token_ids``, ``skip_special_tokens`` (default true),
    ``spaces_between_special_tokens`` (default true), ``include_stop_str_in_output``,
    ``top_k`` (-1 = off): https://docs.vllm.ai/en/v0.8.3/api/inference_params.html
  * ``POST /tokenize`` {"model", "prompt", "add_special_tokens"} -> {"count", "max_model_len",
    "tokens"} and ``POST /detokenize`` {"model", "tokens"} -> {"prompt"} (server root, not /v1):
    https://docs.vllm.ai/en/v0.15.0/api/vllm/entrypoints/serve/tokenize/protocol/
  * ``GET /v1/models`` cards carry ``owned_by: "vllm"`` and ``max_model_len``; ``GET /health``
    answers 200 when the engine is up.
  * ``stream_options: {"include_usage": true}`` adds a final chunk with ``usage``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cgstudio.core.engine import SamplerConfig
from cgstudio.core.errors import UpstreamError
from cgstudio.engine.remote.dialect import Dialect


class VLLMDialect(Dialect):
    name = "vllm"
    token_prompts = True
    tokenize_path = "/tokenize"
    detokenize_path = "/detokenize"

    def prompt_field(self, prompt: Sequence[int] | str) -> list[int]:
        if isinstance(prompt, str):
            raise TypeError("the vLLM dialect sends token ids; render nothing to text")
        return [int(t) for t in prompt]

    def extra_fields(
        self, sampler: SamplerConfig, stop_ids: Sequence[int], stop_texts: Sequence[str]
    ) -> dict[str, Any]:
        return {
            "stream_options": {"include_usage": True},
            "top_k": sampler.top_k if sampler.top_k > 0 else -1,
            "min_p": sampler.min_p,
            # llama.cpp's repeat_penalty and vLLM's repetition_penalty are both multiplicative on
            # logits of seen tokens; vLLM has no repeat_last_n window (it looks at everything).
            "repetition_penalty": sampler.repeat_penalty,
            # The format's stop tokens (file separator, end of turn, ...) end generation by id,
            # on top of the model's EOS; the stop token itself is not in the text.
            "stop_token_ids": sorted(int(t) for t in stop_ids),
            "include_stop_str_in_output": False,
            # Control tokens never reach the text (our pipeline drops them too), and no spaces are
            # invented around special tokens that do get rendered.
            "skip_special_tokens": True,
            "spaces_between_special_tokens": False,
        }

    def tokenize_body(self, model: str, text: str) -> dict[str, Any]:
        # add_special_tokens=False: no BOS; prompts get theirs from the format. vLLM's tokenizer
        # always parses special-token text; Vocab.plain splits such text so it stays plain.
        return {"model": model, "prompt": text, "add_special_tokens": False}

    def parse_text(self, doc: Any) -> str:
        text = doc.get("prompt") if isinstance(doc, dict) else None
        if not isinstance(text, str):
            raise UpstreamError("vLLM's /detokenize answer has no prompt text")
        return text


def is_vllm(models: list[dict[str, Any]]) -> bool:
    """vLLM's model cards say ``owned_by: "vllm"``."""
    return any(m.get("owned_by") == "vllm" for m in models)


def max_model_len(card: dict[str, Any]) -> int | None:
    value = card.get("max_model_len")
    return value if isinstance(value, int) and value > 0 else None
