"""Model families: what each family's tokens, prompt orders and variants are, and how to tell a
family from a GGUF's metadata and vocabulary. One ``Family`` record per family (``base``), one
module per family, a registry (``register``, ``FAMILIES``, ``detect``, ``family_from_name``) and
``profile(info)``; every other package asks here instead of spelling a token itself."""

from cgstudio.families.base import (
    ChatFormat,
    Family,
    FimTokens,
    RemoteVocab,
    ToolFormat,
    VariantHints,
    VocabRules,
)
from cgstudio.families.foreign_fim import FimTemplate, ForeignFim, parse_foreign_fim, template_name
from cgstudio.families.profile import (
    ModelProfile,
    Variant,
    VariantGuess,
    detect_variant,
    profile,
    suggested_variant_name,
    variant_from_name,
)
from cgstudio.families.registry import (
    FAMILIES,
    UNKNOWN,
    detect,
    family_from_name,
    family_names,
    get,
    register,
    unregister,
)
from cgstudio.families.unknown import FOREIGN_FIM_MARKERS

__all__ = [
    "FAMILIES",
    "FOREIGN_FIM_MARKERS",
    "UNKNOWN",
    "ChatFormat",
    "Family",
    "FimTemplate",
    "FimTokens",
    "ForeignFim",
    "ModelProfile",
    "RemoteVocab",
    "ToolFormat",
    "Variant",
    "VariantGuess",
    "VariantHints",
    "VocabRules",
    "detect",
    "detect_variant",
    "family_from_name",
    "family_names",
    "get",
    "parse_foreign_fim",
    "profile",
    "register",
    "suggested_variant_name",
    "template_name",
    "unregister",
    "variant_from_name",
]
