"""One settings model validates flags, environment variables and the TOML profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.core.errors import SettingsError
from cgstudio.core.settings import LoadProfile, load_settings


def test_defaults_are_codegemma_friendly() -> None:
    s = load_settings()
    assert s.load.n_ctx == 8192 and s.load.n_batch == 512
    assert s.load.rope_freq_base is None and s.load.seed is None
    assert s.sampling.repeat_penalty == 1.0


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"sampling": {"temperature": -3}}, "temperature"),
        ({"sampling": {"top_p": 1.5}}, "top_p"),
        ({"sampling": {"max_tokens": 0}}, "max_tokens"),
        ({"load": {"n_ctx": 0}}, "n_ctx"),
        ({"load": {"cache_type_v": "q8_0"}}, "needs flash attention"),
        ({"load": {"cache_type_k": "q3_k"}}, "cache_type_k"),
        ({"load": {"n_gpu_layers": -5}}, "n_gpu_layers"),
        ({"load": {"rope_freq_base": "fast"}}, "rope_freq_base"),
    ],
)
def test_impossible_values_are_clear_errors(overrides: dict, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        load_settings(overrides)


def test_quantized_v_cache_with_flash_attention_is_fine() -> None:
    p = LoadProfile(cache_type_v="q8_0", cache_type_k="q8_0", flash_attn=True)
    assert p.cache_type_v == "q8_0"


def test_auto_and_all_spellings() -> None:
    s = load_settings({"load": {"rope_freq_base": "auto", "n_gpu_layers": "all"}})
    assert s.load.rope_freq_base is None and s.load.n_gpu_layers == -1


def test_precedence_flag_over_env_over_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text(
        'model = "x.gguf"\n[load]\nn_ctx = 2048\nn_batch = 256\n[sampling]\ntemperature = 0.7\n'
    )
    monkeypatch.setenv("CGSTUDIO_PROFILE", str(profile))
    s = load_settings()
    assert (s.model, s.load.n_ctx, s.load.n_batch, s.sampling.temperature) == ("x.gguf", 2048, 256, 0.7)
    monkeypatch.setenv("CGSTUDIO_LOAD__N_CTX", "4096")
    assert load_settings().load.n_ctx == 4096
    s = load_settings({"load": {"n_ctx": 1024}})
    assert s.load.n_ctx == 1024 and s.load.n_batch == 256  # a flag overrides one field, not the section


def test_bad_profile_file_is_a_settings_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    profile = tmp_path / "profile.toml"
    profile.write_text("[load\nn_ctx = ")
    monkeypatch.setenv("CGSTUDIO_PROFILE", str(profile))
    with pytest.raises(SettingsError, match="profile"):
        load_settings()
    profile.write_text("[load]\nctx = 5\n")
    with pytest.raises(SettingsError, match="ctx"):
        load_settings()
