"""Known CodeGemma GGUF repositories on the Hugging Face Hub, for ``cgstudio pull NAME[:QUANT]``.

The file to download is always chosen from the repository's live file listing (the Hub's
model-info API), so a renamed or added quantization does not need a catalog change; the
catalog only says which repositories to ask, in which order, and what we verified.

How each entry was checked (2025, against the Hub pages and model cards; see docs/models.md):
  google/codegemma-{2b,7b}-GGUF       model card; commit history "Upload codegemma-2b.gguf" and
                                      "Upload codegemma-2b-f16.gguf" (7b likewise): the official repos
                                      hold only full precision, <name>.gguf (F32) and <name>-f16.gguf.
  google/codegemma-7b-it-GGUF         model card (its example runs codegemma-7b-it.gguf); a third-party
                                      listing shows codegemma-7b-it-f16.gguf. F32/F16 names by analogy.
  google/codegemma-1.1-2b-GGUF,
  google/codegemma-1.1-7b-it-GGUF     UNVERIFIED FILE NAMES: the repositories exist (Hub pages), their
                                      file lists were not visible to us; pull resolves from the listing.
  bartowski/codegemma-{2b,7b,7b-it}-GGUF  repository trees: <name>-<QUANT>.gguf, IQ1_S..Q8_0.
  bartowski/codegemma-1.1-7b-it-GGUF  model card table: codegemma-1.1-7b-it-<QUANT>.gguf (Q4_K_M..Q8_0).
  lmstudio-community/codegemma-7b-it-GGUF, lmstudio-community/codegemma-1.1-7b-it-GGUF
                                      repository trees (duplicated from bartowski; 1.1 keeps IQ3_M,
                                      IQ4_NL, Q3_K_L, Q4_K_M, Q5_K_M, Q6_K, Q8_0).
  lmstudio-community/codegemma-2b-GGUF, lmstudio-community/codegemma-7b-GGUF
                                      model cards exist (quantized by bartowski); file names UNVERIFIED.
All Google repositories are gated (the Gemma license must be accepted on the model page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from cgstudio.core.errors import ModelNotFoundError, UsageError

DEFAULT_QUANT = "Q4_K_M"
QUANT_RE = re.compile(r"^(?:I?Q\d[A-Z0-9_]*|F16|F32|BF16)$", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """One Hub repository. ``files`` pins quant -> file name where names do not follow <name>-<QUANT>."""

    repo: str
    kind: Literal["official", "community"]
    quants: tuple[str, ...] = ()  # quantizations we saw in the repository (a hint; the listing decides)
    files: dict[str, str] = field(default_factory=dict)
    verified: bool = True  # False: the repository exists but its file names were not checked


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    params: Literal["2b", "7b"]
    variant: Literal["pretrained", "instruction-tuned"]
    version: str
    description: str
    sources: tuple[Source, ...]

    @property
    def fim(self) -> bool:
        return self.variant == "pretrained"


_K_QUANTS = ("Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0")
_I_QUANTS = (
    "IQ1_S",
    "IQ1_M",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ2_M",
    "IQ3_XXS",
    "IQ3_XS",
    "IQ3_S",
    "IQ3_M",
    "IQ4_XS",
    "IQ4_NL",
)
_BARTOWSKI = _I_QUANTS + _K_QUANTS


def _google(name: str, *, verified: bool = True) -> Source:
    return Source(
        f"google/{name}-GGUF",
        "official",
        ("F32", "F16"),
        {"F32": f"{name}.gguf", "F16": f"{name}-f16.gguf"},
        verified,
    )


CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            "codegemma-2b",
            "2b",
            "pretrained",
            "1.0",
            "fast code completion (FIM), the keystroke model",
            (
                Source("bartowski/codegemma-2b-GGUF", "community", _BARTOWSKI),
                Source("lmstudio-community/codegemma-2b-GGUF", "community", verified=False),
                _google("codegemma-2b"),
            ),
        ),
        CatalogEntry(
            "codegemma-7b",
            "7b",
            "pretrained",
            "1.0",
            "code completion (FIM) and generation from a code prefix",
            (
                Source("bartowski/codegemma-7b-GGUF", "community", _BARTOWSKI),
                Source("lmstudio-community/codegemma-7b-GGUF", "community", verified=False),
                _google("codegemma-7b"),
            ),
        ),
        CatalogEntry(
            "codegemma-7b-it",
            "7b",
            "instruction-tuned",
            "1.0",
            "chat and instructions about code",
            (
                Source("bartowski/codegemma-7b-it-GGUF", "community", _BARTOWSKI),
                Source("lmstudio-community/codegemma-7b-it-GGUF", "community", _BARTOWSKI),
                _google("codegemma-7b-it"),
            ),
        ),
        CatalogEntry(
            "codegemma-1.1-2b",
            "2b",
            "pretrained",
            "1.1",
            "CodeGemma 1.1 fast completion (FIM)",
            (_google("codegemma-1.1-2b", verified=False),),
        ),
        CatalogEntry(
            "codegemma-1.1-7b-it",
            "7b",
            "instruction-tuned",
            "1.1",
            "CodeGemma 1.1 chat: the recommended chat model",
            (
                Source(
                    "bartowski/codegemma-1.1-7b-it-GGUF",
                    "community",
                    ("Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0"),
                ),
                Source(
                    "lmstudio-community/codegemma-1.1-7b-it-GGUF",
                    "community",
                    ("IQ3_M", "IQ4_NL", "Q3_K_L", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"),
                ),
                _google("codegemma-1.1-7b-it", verified=False),
            ),
        ),
    )
}


@dataclass(frozen=True)
class PullSpec:
    """What ``pull NAME[:QUANT]`` asks for: a catalog entry or a bare repository, and a quantization."""

    name: str
    quant: str
    entry: CatalogEntry | None
    sources: tuple[Source, ...]

    @property
    def default_alias(self) -> str:
        base = self.entry.name if self.entry else self.name.split("/")[-1].lower().removesuffix("-gguf")
        return f"{base}:{self.quant.lower()}"


def parse_spec(spec: str, *, repo: str | None = None) -> PullSpec:
    """``codegemma-7b-it``, ``codegemma-2b:Q8_0`` or ``owner/repo-GGUF:Q4_K_M``; ``repo`` forces a source."""
    name, _, quant = spec.strip().partition(":")
    quant = (quant or DEFAULT_QUANT).upper()
    if not QUANT_RE.match(quant):
        raise UsageError(f"{quant!r} is not a quantization; use e.g. Q4_K_M, Q5_K_M, Q8_0, F16")
    entry = CATALOG.get(name.lower())
    if repo:
        known = [s for s in (entry.sources if entry else ()) if s.repo.lower() == repo.lower()]
        return PullSpec(name, quant, entry, tuple(known) or (Source(repo, "community", verified=False),))
    if entry is not None:
        return PullSpec(entry.name, quant, entry, order_sources(entry.sources, quant))
    if re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return PullSpec(name, quant, None, (Source(name, "community", verified=False),))
    raise ModelNotFoundError(
        f"unknown model {name!r}; known: {', '.join(CATALOG)} (or give a Hub repository as owner/name)"
    )


def order_sources(sources: tuple[Source, ...], quant: str) -> tuple[Source, ...]:
    """Sources known to carry ``quant`` first, keeping the catalog order otherwise."""
    has = [s for s in sources if quant in s.quants or quant in s.files]
    return tuple(has + [s for s in sources if s not in has])


def match_file(filenames: list[str], quant: str, source: Source) -> str | None:
    """The GGUF in ``filenames`` that holds ``quant`` (single-file GGUFs only)."""
    if quant in source.files and source.files[quant] in filenames:
        return source.files[quant]
    pattern = re.compile(rf"(?:^|[-_.]){re.escape(quant)}\.gguf$", re.IGNORECASE)
    hits = [f for f in filenames if pattern.search(f.rsplit("/", 1)[-1]) and "mmproj" not in f.lower()]
    return min(hits, key=len) if hits else None


def quants_in(filenames: list[str]) -> list[str]:
    """Quantization tags found in GGUF file names, for "available: ..." messages."""
    tags = set()
    for f in filenames:
        m = re.search(r"[-_.]((?:I?Q\d[A-Za-z0-9_]*)|f16|f32|bf16)\.gguf$", f, re.IGNORECASE)
        if m:
            tags.add(m.group(1).upper())
    return sorted(tags)
