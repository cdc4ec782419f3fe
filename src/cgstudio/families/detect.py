"""Family and variant detection from GGUF metadata and vocabulary.

Family (first match wins):
  codegemma      architecture gemma*; vocabulary has <|fim_prefix|> <|fim_suffix|> <|fim_middle|>
                 and <|file_separator|>
  qwen2.5-coder  architecture qwen2, vocabulary has <|fim_prefix|> <|fim_suffix|> <|fim_middle|> <|file_sep|>
  gemma          architecture gemma, gemma2 or gemma3 (no FIM tokens)
  unknown        anything else (chat from the GGUF's own template, no FIM)

Variant rules (first match wins; override with --variant / guards.variant):
  1. general.finetune, general.name or the file name says it: "-it", "instruct", "chat" -> instruction-tuned;
     "-pt", "base", "pretrained" -> pretrained                                    (confidence: high)
  2. a gemma-family GGUF with a chat template -> instruction-tuned; without one -> pretrained  (medium)
  3. otherwise unknown                                                              (low)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cgstudio.core.engine import ModelInfo

Variant = Literal["pretrained", "instruction-tuned", "unknown"]
CODEGEMMA_FIM = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_separator|>")
QWEN_FIM = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|file_sep|>")
GEMMA_ARCHES = ("gemma", "gemma2", "gemma3")

_IT = re.compile(r"(?:^|[-_ .])(it|instruct|chat)(?:$|[-_ .])", re.IGNORECASE)
_PT = re.compile(r"(?:^|[-_ .])(pt|base|pretrained)(?:$|[-_ .])", re.IGNORECASE)


@dataclass(frozen=True)
class VariantGuess:
    variant: Variant
    confidence: Literal["high", "medium", "low", "override"]
    reason: str


def detect_family(info: ModelInfo) -> str:
    vocab = info.special_tokens
    if info.architecture in GEMMA_ARCHES and all(t in vocab for t in CODEGEMMA_FIM):
        return "codegemma"
    if info.architecture == "qwen2" and all(t in vocab for t in QWEN_FIM):
        return "qwen2.5-coder"
    if info.architecture in GEMMA_ARCHES:
        return "gemma"
    return "unknown"


def detect_variant(info: ModelInfo, override: str = "auto") -> VariantGuess:
    if override in ("pretrained", "instruction-tuned"):
        return VariantGuess(override, "override", "set by the user")  # type: ignore[arg-type]
    meta = info.metadata
    for source in ("general.finetune", "general.name", "file name"):
        value = Path(info.path).stem if source == "file name" else meta.get(source, "")
        if not value:
            continue
        if _IT.search(value):
            return VariantGuess("instruction-tuned", "high", f"{source} {value!r} names an instruct variant")
        if _PT.search(value):
            return VariantGuess("pretrained", "high", f"{source} {value!r} names a pretrained variant")
    if info.architecture in GEMMA_ARCHES:
        if info.chat_template:
            return VariantGuess("instruction-tuned", "medium", "Gemma GGUF with a chat template")
        return VariantGuess("pretrained", "medium", "Gemma GGUF without a chat template")
    return VariantGuess("unknown", "low", "no name, fine-tune field or template says which")


def suggested_variant_name(family: str, info: ModelInfo, want: Literal["chat", "fim"]) -> str:
    """Name the variant the user should load instead, e.g. codegemma-7b-it for chat."""
    if family in ("codegemma", "gemma"):
        size = "2b" if info.n_params and info.n_params < 4e9 else "7b"
        if want == "chat":
            return "codegemma-7b-it"
        return f"codegemma-{size}" if family == "codegemma" else "codegemma-2b or codegemma-7b"
    if family == "qwen2.5-coder":
        return "a Qwen2.5-Coder -Instruct model" if want == "chat" else "a Qwen2.5-Coder base model"
    return "an instruction-tuned model" if want == "chat" else "a FIM-capable code model"
