"""``cgstudio doctor``: the problems that stop a model before its first token, each with a fix.

Machine checks: the CPU against the llama.cpp build (AMX crash hazard, unused AVX2/AVX-512,
instructions the CPU lacks), the GPU and whether the build can use it, RAM/VRAM against the model
and its KV cache, threads against physical cores. GGUF checks (vocabulary only, fast for any size):
architecture, BOS/EOS ids, add_bos, add_space_prefix, FIM tokens and their types, end-of-turn,
an exact tokenizer round trip, the trained context, and the variant with its confidence.

A check is ``ok``, ``warn`` (works, but slower or degraded) or ``fail`` (crashes, wrong or empty
output); ``doctor`` exits 1 when any check fails. The machine checks are in ``machine``, the GGUF
checks in ``gguf``; this module runs them and assembles the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cgstudio.core.engine import ModelInfo
from cgstudio.core.errors import CGStudioError
from cgstudio.core.settings import LoadProfile
from cgstudio.diagnostics.check import Check, Status
from cgstudio.diagnostics.gguf import (
    VocabProbe,
    check_context,
    check_end_of_turn,
    check_fim,
    check_roundtrip,
    check_space_prefix,
    check_special_ids,
    probe,
    probe_texts,
)
from cgstudio.diagnostics.hardware import Machine
from cgstudio.diagnostics.machine import machine_checks
from cgstudio.engine.llamacpp.gguf_check import validate_model_file
from cgstudio.families import profile as family_profile


def model_checks(p: VocabProbe, profile: LoadProfile, path: str) -> tuple[list[Check], dict[str, Any]]:
    info = p.info
    prof = family_profile(info)
    family, variant, fim = prof.family.name, prof.variant, prof.fim
    supported = family != "unknown"
    checks = [
        Check(
            "gguf.architecture",
            "ok" if supported else "warn",
            f"{info.architecture}, family {family} ({info.quantization}, {info.n_layers} layers)",
            ""
            if supported
            else "cgstudio knows codegemma, gemma and qwen2.5-coder; other models get "
            "their own chat template and no FIM",
        )
    ]
    checks += check_special_ids(p, family, path)
    checks.append(check_space_prefix(p, family, path))
    checks.append(check_fim(p, family))
    checks.append(check_end_of_turn(p, family, variant.variant))
    checks.append(check_roundtrip(p))
    checks.append(check_context(info, profile))
    vstatus: Status = "warn" if variant.confidence == "low" else "ok"
    checks.append(
        Check(
            "gguf.variant",
            vstatus,
            f"{variant.variant} ({variant.confidence} confidence: {variant.reason}); FIM "
            f"{'yes' if fim else 'no'}",
            "" if vstatus == "ok" else "say which with --variant pretrained|instruction-tuned",
        )
    )
    summary = {
        "path": path,
        "name": info.name,
        "architecture": info.architecture,
        "family": family,
        "variant": variant.variant,
        "variant_confidence": variant.confidence,
        "variant_reason": variant.reason,
        "fim": fim,
        "quantization": info.quantization,
        "size_bytes": info.size_bytes,
    }
    return checks, summary


def run(machine: Machine, profile: LoadProfile, model_path: Path | None) -> dict[str, Any]:
    """All checks as ``{"checks": [...], "model": {...} | None}``. Never raises for a bad GGUF."""
    model: dict[str, Any] | None = None
    checks: list[Check] = []
    info: ModelInfo | None = None
    if model_path is not None:
        try:
            validate_model_file(model_path)  # what llama.cpp would abort on fails here, as a check
            p = probe(model_path, probe_texts())
        except CGStudioError as exc:
            checks.append(
                Check(
                    "gguf.architecture",
                    "fail",
                    exc.message,
                    "check the file is a complete GGUF of a supported architecture; re-download it",
                )
            )
        else:
            info = p.info
            gguf_checks, model = model_checks(p, profile, str(model_path))
            checks += gguf_checks
    return {"checks": [c.to_json() for c in machine_checks(machine, profile, info) + checks], "model": model}


def failed(doc: dict[str, Any]) -> list[str]:
    return [c["name"] for c in doc["checks"] if c["status"] == "fail"]
