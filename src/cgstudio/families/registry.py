"""The known families, in registration order, and detection from metadata or from a name.

Detection from a GGUF (``detect``), first match wins:
  1. a family whose architectures include the GGUF's and whose ``detect_tokens`` are all in the
     vocabulary (codegemma, qwen2.5-coder, ...), in registration order;
  2. a family that matches on architecture alone (gemma);
  3. ``unknown``: chat from the GGUF's own template, no FIM.
"""

from __future__ import annotations

from cgstudio.core.engine import ModelInfo
from cgstudio.families import codegemma, gemma, qwen25_coder, unknown
from cgstudio.families.base import Family

UNKNOWN = unknown.FAMILY
FAMILIES: dict[str, Family] = {}


def family_names() -> list[str]:
    """The registered families a user can name (``unknown`` is what detection falls back to)."""
    return [name for name in FAMILIES if name != UNKNOWN.name]


def register(family: Family) -> Family:
    """Add (or replace) a family. ``unknown`` stays the catch-all whatever is registered."""
    FAMILIES[family.name] = family
    if family.name != UNKNOWN.name and UNKNOWN.name in FAMILIES:
        FAMILIES[UNKNOWN.name] = FAMILIES.pop(UNKNOWN.name)  # keep the catch-all last
    return family


def unregister(name: str) -> None:
    if name == UNKNOWN.name:
        raise ValueError("the unknown family cannot be unregistered")
    FAMILIES.pop(name, None)


def get(name: str | None) -> Family:
    """The family called ``name``; ``unknown`` for None or a name not registered."""
    return FAMILIES.get(name or UNKNOWN.name, UNKNOWN)


def detect(info: ModelInfo) -> Family:
    known = [f for f in FAMILIES.values() if f.name != UNKNOWN.name and f.architectures]
    for family in (*(f for f in known if f.detect_tokens), *(f for f in known if not f.detect_tokens)):
        if family.matches(info.architecture, info.special_tokens):
            return family
    return UNKNOWN


def family_from_name(name: str) -> str:
    """The family a model id or file name implies: 'google/codegemma-7b-it' -> codegemma."""
    for family in FAMILIES.values():
        if family.name_pattern is not None and family.name_pattern.search(name):
            return family.name
    return UNKNOWN.name


for _family in (codegemma.FAMILY, gemma.FAMILY, qwen25_coder.FAMILY, UNKNOWN):
    register(_family)
