"""The catalog of CodeGemma repositories and how NAME[:QUANT] picks a file."""

from __future__ import annotations

import re

import pytest

from cgstudio.core.errors import ModelNotFoundError, UsageError
from cgstudio.store.catalog import CATALOG, DEFAULT_QUANT, Source, match_file, parse_spec, quants_in

BARTOWSKI_7B = [
    "README.md",
    "codegemma-7b-IQ4_XS.gguf",
    "codegemma-7b-Q4_K_M.gguf",
    "codegemma-7b-Q4_K_S.gguf",
    "codegemma-7b-Q8_0.gguf",
    "codegemma-7b.imatrix",
]


def test_catalog_shape() -> None:
    assert {
        "codegemma-2b",
        "codegemma-7b",
        "codegemma-7b-it",
        "codegemma-1.1-2b",
        "codegemma-1.1-7b-it",
    } <= set(CATALOG)
    for entry in CATALOG.values():
        assert entry.sources and all(re.fullmatch(r"[\w-]+/[\w.-]+-GGUF", s.repo) for s in entry.sources)
        assert entry.fim == (entry.variant == "pretrained")
        official = [s for s in entry.sources if s.kind == "official"]
        assert len(official) == 1 and official[0].repo == f"google/{entry.name}-GGUF"
        assert official[0].files == {"F32": f"{entry.name}.gguf", "F16": f"{entry.name}-f16.gguf"}


def test_parse_spec() -> None:
    s = parse_spec("codegemma-7b-it")
    assert s.quant == DEFAULT_QUANT and s.default_alias == "codegemma-7b-it:q4_k_m"
    assert s.sources[0].repo == "bartowski/codegemma-7b-it-GGUF"
    f16 = parse_spec("codegemma-2b:f16")
    assert f16.quant == "F16" and f16.sources[0].repo == "google/codegemma-2b-GGUF"  # who has it goes first
    direct = parse_spec("someone/CodeGemma-2b-GGUF:Q5_K_M")
    assert direct.entry is None and direct.sources[0].repo == "someone/CodeGemma-2b-GGUF"
    assert direct.default_alias == "codegemma-2b:q5_k_m"
    forced = parse_spec("codegemma-2b", repo="lmstudio-community/codegemma-2b-GGUF")
    assert [s.repo for s in forced.sources] == ["lmstudio-community/codegemma-2b-GGUF"]
    with pytest.raises(UsageError, match="not a quantization"):
        parse_spec("codegemma-2b:fast")
    with pytest.raises(ModelNotFoundError, match="unknown model 'llama'"):
        parse_spec("llama")


def test_match_file() -> None:
    src = Source("bartowski/codegemma-7b-GGUF", "community")
    assert match_file(BARTOWSKI_7B, "Q4_K_M", src) == "codegemma-7b-Q4_K_M.gguf"
    assert match_file(BARTOWSKI_7B, "Q4_K", src) is None  # no prefix matches
    assert match_file(["codegemma-7b-it.Q4_K_M.gguf"], "Q4_K_M", src) == "codegemma-7b-it.Q4_K_M.gguf"
    google = CATALOG["codegemma-2b"].sources[-1]
    assert match_file(["codegemma-2b.gguf", "codegemma-2b-f16.gguf"], "F32", google) == "codegemma-2b.gguf"
    assert (
        match_file(["codegemma-2b.gguf", "codegemma-2b-f16.gguf"], "F16", google) == "codegemma-2b-f16.gguf"
    )
    assert quants_in(BARTOWSKI_7B) == ["IQ4_XS", "Q4_K_M", "Q4_K_S", "Q8_0"]
