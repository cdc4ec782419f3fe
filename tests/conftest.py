"""Shared fixtures: isolated HOME/config, synthetic CodeGemma GGUFs, the demo models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def demo_paths() -> dict[str, Path]:
    # Resolved before HOME is isolated: the assembled demo GGUFs live in the real data dir.
    from cgstudio.store.demo import DEMO_MODELS, ensure

    return {key: ensure(key) for key in DEMO_MODELS}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("home")
    for key in list(os.environ):
        if key.startswith("CGSTUDIO_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("CGSTUDIO_PROFILE", str(home / "config" / "cgstudio" / "profile.toml"))


@pytest.fixture(scope="session")
def codegemma_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic CodeGemma GGUFs: special tokens typed CONTROL and USER_DEFINED, plus variants."""
    d = tmp_path_factory.mktemp("gguf")
    return {
        "control": write_codegemma_gguf(d / "codegemma-2b-control.gguf", special_token_type="control"),
        "user_defined": write_codegemma_gguf(
            d / "codegemma-2b-userdef.gguf", special_token_type="user_defined"
        ),
        "user_defined_nokeys": write_codegemma_gguf(
            d / "codegemma-2b-nokeys.gguf", special_token_type="user_defined", fim_id_keys="none"
        ),
        "it": write_codegemma_gguf(d / "codegemma-7b-it.gguf", name="codegemma-7b-it"),
        "nofim": write_codegemma_gguf(d / "gemma-nofim.gguf", name="gemma-2b", include_fim=False),
    }


@pytest.fixture(scope="session")
def qwen_path(demo_paths: dict[str, Path]) -> Path:
    return demo_paths["qwen2.5-coder-0.5b"]


@pytest.fixture(scope="session")
def gemma3_path(demo_paths: dict[str, Path]) -> Path:
    return demo_paths["gemma3-270m"]
