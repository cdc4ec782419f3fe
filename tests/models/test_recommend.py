"""``cgstudio recommend``: profiles that fit described machines, and that load and run on real ones."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

import cgstudio
from cgstudio.cli.main import main
from cgstudio.core.settings import LoadProfile, default_profile_path, load_settings
from cgstudio.diagnostics.hardware import BuildInfo, CpuInfo, GpuInfo, Machine, MemoryInfo, detect
from cgstudio.diagnostics.memory import GIB, estimate
from cgstudio.diagnostics.recommend import LM_STUDIO_FIELDS, recommend, write_profile
from cgstudio.engine.llamacpp import inspect_model


def machine(ram: float, *, vram: float | None = None, cores: int = 8) -> Machine:
    gpu = GpuInfo("nvidia", "RTX test", int(vram * GIB), int(vram * GIB)) if vram else GpuInfo("none")
    build = BuildInfo("CPU : AVX2 = 1 |", {"AVX2": True}, {}, gpu_offload=vram is not None)
    return Machine(
        CpuInfo("x86_64", "cpu", frozenset({"avx2"}), cores, cores * 2),
        build,
        gpu,
        MemoryInfo(int(ram * GIB), int(ram * GIB)),
    )


def budget(ram: float) -> int:
    return int(ram * GIB * 0.85) - 256 * 2**20


def test_every_parameter_has_a_value_and_a_reason(codegemma7b_info: Any) -> None:
    rec = recommend(codegemma7b_info, machine(64))
    assert tuple(rec.profile) == LM_STUDIO_FIELDS and set(rec.reasons) == set(LM_STUDIO_FIELDS)
    assert all(rec.reasons[k] for k in LM_STUDIO_FIELDS)
    p = rec.profile
    assert (p["n_ctx"], p["n_gpu_layers"], p["n_threads"], p["cache_type_k"], p["flash_attn"]) == (
        8192,
        0,
        8,
        "f16",
        False,
    )
    assert "trained on 8192" in rec.reasons["n_ctx"] and "hyperthreads" in rec.reasons["n_threads"]
    LoadProfile.model_validate(p)  # a valid profile, as written


def test_tight_memory_takes_q8_0_kv_with_flash_attention(codegemma7b_info: Any) -> None:
    # 7b Q4_K_M (5 GiB) + 3.5 GiB F16 KV at 8192 does not fit 10 GiB; q8_0 halves the KV and does
    rec = recommend(codegemma7b_info, machine(10))
    p = rec.profile
    assert p["cache_type_k"] == p["cache_type_v"] == "q8_0" and p["flash_attn"] is True
    assert "tight" in rec.reasons["cache_type_v"] and rec.memory["fits"]
    assert p["n_ctx"] == 8192 and estimate(codegemma7b_info, LoadProfile.model_validate(p)).ram <= budget(10)


def test_very_tight_memory_shrinks_the_context(codegemma7b_info: Any) -> None:
    rec = recommend(codegemma7b_info, machine(7.5))
    assert rec.profile["n_ctx"] < 8192 and rec.memory["fits"]
    assert estimate(codegemma7b_info, LoadProfile.model_validate(rec.profile)).ram <= budget(7.5)
    hopeless = recommend(codegemma7b_info, machine(4))
    assert not hopeless.memory["fits"] and "does not fit" in hopeless.notes[0]


def test_gpu_layers_that_fit(codegemma7b_info: Any) -> None:
    full = recommend(codegemma7b_info, machine(32, vram=24))
    assert full.profile["n_gpu_layers"] == -1 and full.profile["flash_attn"] is True
    part = recommend(codegemma7b_info, machine(32, vram=4))
    assert 0 < part.profile["n_gpu_layers"] < 28 and "of 28 layers" in part.reasons["n_gpu_layers"]
    need = estimate(codegemma7b_info, LoadProfile.model_validate(part.profile))
    assert need.vram <= 4 * GIB - 512 * 2**20


def test_variant_advice_per_task(codegemma7b_info: Any, codegemma7b_it_info: Any) -> None:
    ok = recommend(codegemma7b_info, machine(16), "completion").variant
    assert ok["fits_task"] and ok["suggested"] is None
    chat_on_pt = recommend(codegemma7b_info, machine(16), "chat").variant
    assert not chat_on_pt["fits_task"] and chat_on_pt["suggested"] == "codegemma-1.1-7b-it"
    fim_on_it = recommend(codegemma7b_it_info, machine(4), "completion").variant
    assert not fim_on_it["fits_task"] and fim_on_it["suggested"] == "codegemma-2b"
    assert fim_on_it["suggested_pull"] == "cgstudio pull codegemma-2b"


def test_write_keeps_other_sections_and_keys(tmp_path: Path, codegemma2b_info: Any) -> None:
    path = tmp_path / "profile.toml"
    path.write_text(
        'model = "cg"\n\n[load]\nn_ctx = 1024\nseed = 7\nn_parallel = 2\n\n'
        "[sampling]\ntemperature = 0.1\n\n[guards]\nstrict = true\n"
    )
    rec = recommend(codegemma2b_info, machine(16))
    write_profile(rec.profile, path)
    doc = tomllib.loads(path.read_text())
    assert (
        doc["model"] == "cg" and doc["sampling"] == {"temperature": 0.1} and doc["guards"] == {"strict": True}
    )
    assert doc["load"]["n_ctx"] == 8192 and doc["load"]["seed"] == 7 and doc["load"]["n_parallel"] == 2
    assert doc["load"]["rope_freq_base"] == "auto"
    write_profile(rec.profile, path)  # idempotent
    assert tomllib.loads(path.read_text()) == doc


def test_cli_json_and_write(codegemma_paths: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["recommend", "--model", str(codegemma_paths["it"]), "--task", "chat", "--json", "--write"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert (
        doc["task"] == "chat" and doc["variant"]["fits_task"] and set(doc["profile"]) == set(LM_STUDIO_FIELDS)
    )
    assert doc["written"] == str(default_profile_path())
    assert load_settings().load.n_ctx == doc["profile"]["n_ctx"]  # the written profile is what loads next
    assert main(["recommend", "--model", str(codegemma_paths["control"])]) == 0
    assert "flash_attn" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("which", ["qwen", "gemma3"])
def test_recommended_profile_loads_and_runs(which: str, qwen_path: Path, gemma3_path: Path) -> None:
    path = qwen_path if which == "qwen" else gemma3_path
    task = "completion"
    rec = recommend(inspect_model(path), detect(), task)
    assert rec.memory["fits"], rec.notes
    m = cgstudio.load(str(path), **rec.profile)
    try:
        assert m.engine.n_ctx == rec.profile["n_ctx"]
        r = m.complete("def add(a, b):\n    return", sampling={"temperature": 0, "max_tokens": 4})
        assert 1 <= r.usage.completion_tokens <= 4
    finally:
        m.close()
