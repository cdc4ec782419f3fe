"""``cgstudio doctor``: machine checks on described machines, GGUF checks on broken synthetic files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gguf
import pytest

from cgstudio.cli.main import main
from cgstudio.core.settings import LoadProfile
from cgstudio.diagnostics import doctor
from cgstudio.diagnostics.hardware import (
    BuildInfo,
    CpuInfo,
    GpuInfo,
    Machine,
    MemoryInfo,
    parse_build_args,
    parse_system_info,
)
from cgstudio.diagnostics.machine import check_cpu, check_gpu, check_memory, check_threads
from cgstudio.diagnostics.memory import GIB, kv_bytes
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

SAPPHIRE = frozenset(
    [
        "fpu",
        "sse2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "bmi2",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "avx512vbmi",
        "avx_vnni",
        "amx_tile",
        "amx_int8",
        "amx_bf16",
    ]
)
OUR_BUILD = (
    "CPU : SSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
    "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 |"
)
OUR_ARGS = (
    "0.3.36 -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF "
    "-DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
)


def machine(
    flags: frozenset[str] = SAPPHIRE,
    system_info: str = OUR_BUILD,
    args: str = OUR_ARGS,
    gpu: GpuInfo | None = None,
    offload: bool = False,
    ram: int = 32 * GIB,
    cores: int = 8,
    arch: str = "x86_64",
) -> Machine:
    build = BuildInfo(system_info, parse_system_info(system_info), parse_build_args(args), offload)
    return Machine(
        CpuInfo(arch, "test cpu", flags, cores, cores * 2),
        build,
        gpu or GpuInfo("none"),
        MemoryInfo(ram, ram),
    )


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in doc["checks"]}


# -- the CPU against the build ------------------------------------------------------------------
def test_our_portable_build_on_an_amx_cpu_is_ok() -> None:
    c = check_cpu(machine())
    assert c.status == "ok" and "AMX present and correctly off" in c.detail


@pytest.mark.parametrize(
    "info,args",
    [
        (OUR_BUILD + " AMX_INT8 = 1 |", OUR_ARGS),
        (OUR_BUILD, "0.3.36 -DGGML_NATIVE=ON"),
        (OUR_BUILD, "0.3.36 -DGGML_AMX_INT8=ON"),
    ],
)
def test_amx_enabled_build_on_amx_cpu_is_a_crash_hazard(info: str, args: str) -> None:
    c = check_cpu(machine(system_info=info, args=args))
    assert c.status == "fail" and "segfaults" in c.detail and "make llama" in c.fix


def test_unused_avx512_is_lost_speed() -> None:
    c = check_cpu(machine(system_info="CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 |"))
    assert c.status == "warn" and "AVX512" in c.detail and "slower" in c.detail and "make llama" in c.fix


def test_build_using_instructions_the_cpu_lacks_fails() -> None:
    old_cpu = frozenset({"sse2", "avx", "avx2", "fma", "f16c"})
    c = check_cpu(machine(flags=old_cpu))
    assert c.status == "fail" and "illegal instruction" in c.detail and "AVX512" in c.detail


def test_arm_is_fine_natively() -> None:
    assert check_cpu(machine(flags=frozenset(), arch="arm64")).status == "ok"


# -- GPU, threads, memory -----------------------------------------------------------------------
def test_gpu_present_but_build_cannot_offload() -> None:
    m = machine(gpu=GpuInfo("nvidia", "RTX 4090", 24 * GIB, 23 * GIB))
    c = check_gpu(m, LoadProfile())
    assert c.status == "warn" and "cannot offload" in c.detail and "CGSTUDIO_GPU=cuda make llama" in c.fix
    idle = check_gpu(
        machine(gpu=GpuInfo("nvidia", "RTX 4090", 24 * GIB, 23 * GIB), offload=True), LoadProfile()
    )
    assert idle.status == "warn" and "idle" in idle.detail
    assert check_gpu(machine(), LoadProfile()).status == "ok"


def test_threads_beyond_physical_cores_warn() -> None:
    assert check_threads(machine(cores=4), LoadProfile(n_threads=8)).status == "warn"
    assert check_threads(machine(cores=4), LoadProfile(n_threads=4)).status == "ok"


def test_codegemma_7b_kv_cache_is_448_kib_per_token(codegemma7b_info: Any) -> None:
    assert kv_bytes(codegemma7b_info, 1) == 448 * 1024
    assert kv_bytes(codegemma7b_info, 8192) == int(3.5 * GIB)
    assert kv_bytes(codegemma7b_info, 8192, "q8_0", "q8_0") < 2 * GIB


def test_memory_check_against_model_and_kv(codegemma7b_info: Any) -> None:
    small = check_memory(machine(ram=8 * GIB), LoadProfile(), codegemma7b_info)[0]
    assert small.status == "fail" and "KV 3.50 GiB" in small.detail and "q8_0" in small.fix
    big = check_memory(machine(ram=64 * GIB), LoadProfile(), codegemma7b_info)[0]
    assert big.status == "ok"
    # Each slot has its own n_ctx cells: four slots need four times the KV cache.
    four = check_memory(machine(ram=64 * GIB), LoadProfile(n_parallel=4), codegemma7b_info)[0]
    assert "KV 14.00 GiB" in four.detail


# -- the GGUF -----------------------------------------------------------------------------------
def run_doctor(path: Path, **profile: Any) -> dict[str, dict[str, str]]:
    return by_name(doctor.run(machine(), LoadProfile(**profile), path))


def test_a_good_codegemma_gguf_passes(codegemma_paths: dict[str, Path]) -> None:
    for key in ("control", "user_defined"):
        checks = run_doctor(codegemma_paths[key])
        bad = {n: c for n, c in checks.items() if c["status"] != "ok"}
        assert not bad, bad
        assert "<|fim_prefix|>=67" in checks["gguf.fim_tokens"]["detail"]


def test_add_space_prefix_true_fails_with_the_fix(tmp_path: Path) -> None:
    path = write_codegemma_gguf(tmp_path / "codegemma-2b-old.gguf", add_space_prefix=True)
    checks = run_doctor(path)
    asp = checks["gguf.add_space_prefix"]
    assert asp["status"] == "fail" and "space before every prompt" in asp["detail"]
    assert f"gguf-set-metadata --force {path} tokenizer.ggml.add_space_prefix ''" in asp["fix"]
    rt = checks["gguf.tokenizer_roundtrip"]
    assert rt["status"] == "fail" and "add_space_prefix" in rt["detail"]
    # the fix we print really fixes the file
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gguf.scripts.gguf_set_metadata",
            "--force",
            str(path),
            "tokenizer.ggml.add_space_prefix",
            "",
        ],
        check=True,
        capture_output=True,
    )
    fixed = run_doctor(path)
    assert (
        fixed["gguf.add_space_prefix"]["status"] == "ok"
        and fixed["gguf.tokenizer_roundtrip"]["status"] == "ok"
    )


def test_missing_add_space_prefix_key_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gguf.GGUFWriter, "add_add_space_prefix", lambda self, value: None)
    path = write_codegemma_gguf(tmp_path / "codegemma-2b-early.gguf")
    asp = run_doctor(path)["gguf.add_space_prefix"]
    assert asp["status"] == "fail" and "missing" in asp["detail"] and "defaults to true" in asp["detail"]
    assert "cgstudio pull" in asp["fix"]


def test_fim_tokens_missing_on_a_codegemma_fails(tmp_path: Path) -> None:
    path = write_codegemma_gguf(tmp_path / "codegemma-2b-nofim.gguf", name="codegemma-2b", include_fim=False)
    fim = run_doctor(path)["gguf.fim_tokens"]
    assert fim["status"] == "fail" and "<|fim_prefix|>" in fim["detail"] and "dropped" in fim["detail"]
    assert "cgstudio pull codegemma-2b" in fim["fix"]


def test_plain_gemma_without_fim_only_warns(codegemma_paths: dict[str, Path]) -> None:
    fim = run_doctor(codegemma_paths["nofim"])["gguf.fim_tokens"]
    assert fim["status"] == "warn" and "codegemma-2b" in fim["fix"]


def test_dropped_bos_eos_ids_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gguf.GGUFWriter, "add_bos_token_id", lambda self, value: None)
    monkeypatch.setattr(gguf.GGUFWriter, "add_eos_token_id", lambda self, value: None)
    path = write_codegemma_gguf(tmp_path / "codegemma-2b-regression.gguf")
    checks = run_doctor(path)
    for role in ("bos", "eos"):
        c = checks[f"gguf.{role}"]
        assert (
            c["status"] == "fail" and "missing" in c["detail"] and "--special-token-by-id bos 2" in c["fix"]
        )


def test_context_beyond_training_warns(codegemma_paths: dict[str, Path]) -> None:
    assert run_doctor(codegemma_paths["control"], n_ctx=16384)["gguf.context"]["status"] == "warn"


def test_doctor_cli_exit_codes_and_json(
    codegemma_paths: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--model", str(codegemma_paths["control"]), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"name", "status", "detail", "fix"} <= set(doc["checks"][0])
    assert doc["model"]["family"] == "codegemma" and doc["model"]["fim"] is True

    bad = write_codegemma_gguf(tmp_path / "codegemma-2b-old.gguf", add_space_prefix=True)
    assert main(["doctor", "--model", str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "FAIL" in out and "fix: gguf-set-metadata" in out
    assert err.strip().startswith("error: 2 check(s) failed: gguf.add_space_prefix, gguf.tokenizer_roundtrip")

    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_text("nope")
    assert main(["doctor", "--model", str(not_gguf), "--json"]) == 1
    assert by_name(json.loads(capsys.readouterr().out))["gguf.architecture"]["status"] == "fail"


def test_doctor_without_a_model_checks_the_machine(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["doctor", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] is None
    assert [c["name"] for c in doc["checks"]] == ["cpu.instructions", "gpu", "memory", "threads"]
    assert rc == (1 if any(c["status"] == "fail" for c in doc["checks"]) else 0)


@pytest.mark.slow
def test_doctor_and_inspect_see_the_demo_models_right(gemma3_path: Path, qwen_path: Path) -> None:
    from cgstudio.cli.inspect import describe

    for path, variant, fim in ((gemma3_path, "pretrained", False), (qwen_path, "instruction-tuned", True)):
        doc = doctor.run(machine(), LoadProfile(), path)
        assert (doc["model"]["variant"], doc["model"]["fim"]) == (variant, fim)
        d = describe(str(path))
        assert (d["variant"], d["fim"]) == (variant, fim)
        checks = by_name(doc)
        assert checks["gguf.tokenizer_roundtrip"]["status"] == "ok"
        assert checks["gguf.bos"]["status"] == "ok" and checks["gguf.add_space_prefix"]["status"] == "ok"
    assert by_name(doctor.run(machine(), LoadProfile(), gemma3_path))["gguf.fim_tokens"]["status"] == "warn"
    assert by_name(doctor.run(machine(), LoadProfile(), qwen_path))["gguf.fim_tokens"]["status"] == "ok"


def test_hardware_probes_parse_what_the_tools_print(monkeypatch: pytest.MonkeyPatch) -> None:
    from cgstudio.diagnostics import hardware

    monkeypatch.setattr(hardware.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(hardware, "_run", lambda cmd, timeout=5.0: "NVIDIA H100 80GB HBM3, 81559, 80000\n")
    gpu = hardware.detect_gpu()
    assert (gpu.kind, gpu.name, gpu.vram_total, gpu.vram_free) == (
        "nvidia",
        "NVIDIA H100 80GB HBM3",
        81559 << 20,
        80000 << 20,
    )
    text = "".join(
        f"processor\t: {i}\nphysical id\t: 0\ncore id\t\t: {i // 2}\nflags\t\t: avx avx2 amx_tile\n"
        "model name\t: Xeon\n\n"
        for i in range(4)
    )
    name, flags, physical = hardware.parse_cpuinfo(text)
    assert (name, physical) == ("Xeon", 2) and {"avx2", "amx_tile"} <= flags
    assert hardware.parse_build_args(OUR_ARGS)["GGML_AMX_INT8"] == "OFF"
    assert parse_system_info(OUR_BUILD)["AVX512_BF16"] is True
