"""One GGUF's profile: its family, a variant guess, what it can do and what to load instead.

Variant rules (first match wins; override with --variant / guards.variant):
  1. general.finetune, general.name or the file name says it: "-it", "instruct", "chat" -> instruction-tuned;
     "-pt", "base", "pretrained" -> pretrained                                    (confidence: high)
  2. a family whose chat template means instruct (gemma, codegemma): with a template ->
     instruction-tuned; without one -> pretrained                                 (medium)
  3. otherwise unknown                                                              (low)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cgstudio.core.engine import ModelInfo
from cgstudio.families.base import Family
from cgstudio.families.registry import detect

Variant = Literal["pretrained", "instruction-tuned", "unknown"]

_IT = re.compile(r"(?:^|[-_ .])(it|instruct|chat)(?:$|[-_ .])", re.IGNORECASE)
_PT = re.compile(r"(?:^|[-_ .])(pt|base|pretrained)(?:$|[-_ .])", re.IGNORECASE)
# A served model id (``org/name:tag``) also separates words with ':' and '/'.
_IT_ID = re.compile(r"(?:^|[-_ .:/])(it|instruct|chat)(?:$|[-_ .:/])", re.IGNORECASE)


@dataclass(frozen=True)
class VariantGuess:
    variant: Variant
    confidence: Literal["high", "medium", "low", "override"]
    reason: str


@dataclass(frozen=True)
class ModelProfile:
    family: Family
    variant: VariantGuess
    info: ModelInfo

    @property
    def fim(self) -> bool:
        return self.family.fim is not None

    @property
    def chat(self) -> bool:
        return self.variant.variant != "pretrained"

    def suggested_variant_name(self, want: Literal["chat", "fim"]) -> str:
        return suggested_variant_name(self.family, self.info, want)


def profile(info: ModelInfo, variant_override: str = "auto") -> ModelProfile:
    family = detect(info)
    return ModelProfile(family, detect_variant(info, variant_override, family), info)


def detect_variant(info: ModelInfo, override: str = "auto", family: Family | None = None) -> VariantGuess:
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
    family = family or detect(info)
    if family.variants.template_means_instruct:
        if info.chat_template:
            return VariantGuess("instruction-tuned", "medium", "Gemma GGUF with a chat template")
        return VariantGuess("pretrained", "medium", "Gemma GGUF without a chat template")
    return VariantGuess("unknown", "low", "no name, fine-tune field or template says which")


def variant_from_name(model_id: str) -> Variant:
    """ "instruction-tuned" when a served model id says so (``-it``, ``instruct``, ``chat``), else
    "pretrained": a server does not tell."""
    return "instruction-tuned" if _IT_ID.search(model_id) else "pretrained"


def suggested_variant_name(family: Family | str, info: ModelInfo, want: Literal["chat", "fim"]) -> str:
    """Name the variant the user should load instead, e.g. codegemma-7b-it for chat."""
    from cgstudio.families.registry import get

    fam = get(family) if isinstance(family, str) else family
    hints = fam.variants
    if want == "chat":
        return hints.suggest_chat
    for below, name in hints.suggest_fim_by_size:
        if info.n_params and info.n_params < below:
            return name
    return hints.suggest_fim
