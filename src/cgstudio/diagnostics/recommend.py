"""``cgstudio recommend``: a load profile (LM Studio's 13 parameters) that fits this machine.

The search, largest first: context length from min(trained, 8192) down to 512; at each length an
F16 KV cache, else a q8_0 K/V cache with flash attention (half the KV memory); GPU layers as many
as fit in free VRAM; batch 512, else 256 (a smaller micro-batch shrinks the logits buffer).
Budgets: 85% of available RAM less 256 MiB, free VRAM less 512 MiB. Every value has a reason.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cgstudio.core.engine import ModelInfo
from cgstudio.core.errors import SettingsError
from cgstudio.core.settings import LoadProfile
from cgstudio.diagnostics.hardware import Machine
from cgstudio.diagnostics.memory import GIB, MIB, MemoryNeed, estimate, gib, trained_context
from cgstudio.families import profile
from cgstudio.store.catalog import CATALOG

UseCase = Literal["completion", "chat"]
# LM Studio's 13 load parameters, in its order; LoadProfile may hold more (engine sharing knobs)
LM_STUDIO_FIELDS = (
    "n_ctx",
    "n_gpu_layers",
    "n_threads",
    "n_batch",
    "rope_freq_base",
    "rope_freq_scale",
    "offload_kqv",
    "use_mlock",
    "use_mmap",
    "seed",
    "flash_attn",
    "cache_type_k",
    "cache_type_v",
)
CTX_CAP = 8192
# typical Q4_K_M file sizes (bartowski's repositories), for "which variant fits" advice
Q4_SIZES = {"codegemma-2b": int(1.63e9), "codegemma-7b": int(5.33e9), "codegemma-1.1-7b-it": int(5.33e9)}


@dataclass
class Recommendation:
    model: str
    task: UseCase
    profile: dict[str, Any]
    reasons: dict[str, str]
    memory: dict[str, Any]
    variant: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "task": self.task,
            "profile": self.profile,
            "reasons": self.reasons,
            "memory": self.memory,
            "variant": self.variant,
            "notes": self.notes,
        }


def _budgets(machine: Machine) -> tuple[int, int | None]:
    mem = machine.memory
    avail = mem.available or mem.total or 8 * GIB
    ram = max(int(avail * 0.85) - 256 * MIB, 256 * MIB)
    vram = None
    if machine.build.gpu_offload and machine.gpu.kind != "none" and machine.gpu.vram_free:
        vram = max(machine.gpu.vram_free - 512 * MIB, 0)
    return ram, vram


def _gpu_layers(info: ModelInfo, base: LoadProfile, vram: int | None) -> int:
    """-1 when everything fits on the GPU, else the most layers that fit, else 0."""
    if vram is None:
        return 0
    full = estimate(info, base.model_copy(update={"n_gpu_layers": -1}))
    if full.vram <= vram:
        return -1
    for n in range(info.n_layers - 1, 0, -1):
        if estimate(info, base.model_copy(update={"n_gpu_layers": n})).vram <= vram:
            return n
    return 0


def _search(info: ModelInfo, ram: int, vram: int | None) -> tuple[LoadProfile, MemoryNeed, bool]:
    trained = trained_context(info) or CTX_CAP
    top = min(trained, CTX_CAP)
    sizes = [top]
    while sizes[-1] // 2 >= 512:
        sizes.append(sizes[-1] // 2)
    last: tuple[LoadProfile, MemoryNeed] | None = None
    for n_batch in (512, 256):
        for n_ctx in sizes:
            for cache in ("f16", "q8_0"):
                quantized = cache != "f16"
                base = LoadProfile(
                    n_ctx=n_ctx,
                    n_batch=n_batch,
                    cache_type_k=cache,
                    cache_type_v=cache,
                    flash_attn=quantized or vram is not None,
                )
                ngl = _gpu_layers(info, base, vram)
                profile = base.model_copy(update={"n_gpu_layers": ngl, "flash_attn": quantized or ngl != 0})
                need = estimate(info, profile)
                last = (profile, need)
                if need.ram <= ram and (need.vram == 0 or (vram is not None and need.vram <= vram)):
                    return profile, need, True
    assert last is not None
    return last[0], last[1], False


def _variant_advice(info: ModelInfo, task: UseCase, ram: int) -> dict[str, Any]:
    prof = profile(info)
    family, v, fim = prof.family.name, prof.variant, prof.fim
    big_fits = Q4_SIZES["codegemma-7b"] + 2 * GIB <= ram
    if task == "completion":
        fits = fim and (v.variant != "instruction-tuned" or family != "codegemma")
        want = "codegemma-7b" if big_fits else "codegemma-2b"
        if fits:
            reason = (
                "FIM-capable pretrained model: the right variant for completion"
                if family == "codegemma"
                else f"{family} has FIM tokens, so completion fills in the middle"
            )
        elif family == "codegemma":
            reason = (
                f"{v.variant} CodeGemma: completion needs the pretrained model; "
                "codegemma-2b is the fastest at keystroke latency"
            )
        else:
            reason = f"{family} has no FIM tokens: completion can only continue text"
    else:
        fits = v.variant == "instruction-tuned"
        want = "codegemma-1.1-7b-it"
        reason = (
            "instruction-tuned: the right variant for chat"
            if fits
            else f"{v.variant} model: chat needs an instruction-tuned model"
        )
        if not fits and not big_fits:
            reason += " (a 7b needs about 7.5 GiB at Q4_K_M; free memory is tight)"
    entry = CATALOG[want]
    return {
        "family": family,
        "variant": v.variant,
        "variant_confidence": v.confidence,
        "fim": fim,
        "fits_task": fits,
        "suggested": None if fits else want,
        "suggested_pull": None if fits else f"cgstudio pull {entry.name}",
        "reason": reason,
    }


def _gpu_reason(machine: Machine, vram: int | None, ngl: int, n_layers: int) -> str:
    gpu = machine.gpu
    name = gpu.name or gpu.kind
    if gpu.kind == "none":
        return "0: no GPU found (CPU only)"
    if not machine.build.gpu_offload:
        backend = {"nvidia": "cuda", "metal": "metal"}.get(gpu.kind, "vulkan")
        return f"0: {name} found, but this llama.cpp build cannot offload (CGSTUDIO_GPU={backend} make llama)"
    if vram is None:
        return f"0: {name}'s free VRAM is unknown (no nvidia-smi); raise --n-gpu-layers yourself"
    if ngl == -1:
        return f"all {n_layers} layers fit in {name}'s free VRAM"
    if ngl:
        return f"{ngl} of {n_layers} layers fit in {name}'s free VRAM"
    return f"0: not one layer fits in {name}'s free VRAM"


def recommend(
    info: ModelInfo, machine: Machine, task: UseCase = "completion", model_label: str = ""
) -> Recommendation:
    """Propose a load profile for ``info`` on ``machine``; it always returns one, with notes if tight."""
    ram, vram = _budgets(machine)
    profile, need, fits = _search(info, ram, vram)
    phys, logical = machine.cpu.physical_cores, machine.cpu.logical_cpus
    ngl = profile.n_gpu_layers
    trained = trained_context(info) or CTX_CAP
    quantized = profile.cache_type_k != "f16"
    rope_base = info.metadata.get(f"{info.architecture}.rope.freq_base")
    reasons = {
        "n_ctx": (
            f"{profile.n_ctx} tokens: the largest that fits"
            + (
                f" (trained {trained}; capped at {CTX_CAP}, enough for FIM with context files)"
                if trained > CTX_CAP
                else f" (the model was trained on {trained})"
            )
            + f"; KV cache {gib(need.kv)}"
        ),
        "n_gpu_layers": _gpu_reason(machine, vram, ngl, info.n_layers),
        "n_threads": (
            f"{phys}: one per physical core"
            + (f" ({logical} logical CPUs: hyperthreads slow llama.cpp)" if logical > phys else "")
        ),
        "n_batch": (
            f"{profile.n_batch}: prompt tokens per evaluation step"
            + ("; 256 halves the logits buffer, memory is tight" if profile.n_batch < 512 else "")
        ),
        "rope_freq_base": f"auto: from the GGUF ({rope_base or 'model default'})",
        "rope_freq_scale": "auto: from the GGUF (no context extension)",
        "offload_kqv": (
            "true: the KV cache lives with its layers on the GPU"
            if ngl
            else "true (the default; no effect without GPU layers)"
        ),
        "use_mlock": "false: mlock needs a raised memlock limit and only avoids paging under memory pressure",
        "use_mmap": "true: loads instantly and shares the page cache between processes",
        "seed": "unset: random; set an integer for reproducible sampling",
        "flash_attn": (
            "true: a quantized V cache requires it"
            if quantized
            else "true: faster attention on the GPU"
            if ngl
            else "false: on the CPU it saves little at this size, and the F16 cache fits"
        ),
        "cache_type_k": (
            "q8_0: memory is tight; halves the K cache at almost no quality cost"
            if quantized
            else "f16: the KV cache fits unquantized"
        ),
        "cache_type_v": (
            "q8_0: memory is tight; halves the V cache (needs flash attention)"
            if quantized
            else "f16: the KV cache fits unquantized"
        ),
    }
    dumped = profile.model_dump()
    values = {k: dumped[k] for k in LM_STUDIO_FIELDS}
    values["n_threads"] = phys
    notes: list[str] = []
    if not fits:
        notes.append(
            f"does not fit: needs about {gib(need.ram)} RAM with the smallest profile, "
            f"{gib(machine.memory.available)} is available; use a smaller quantization or codegemma-2b"
        )
    memory = {
        "ram_needed": need.ram,
        "vram_needed": need.vram,
        "weights": need.weights,
        "kv_cache": need.kv,
        "compute": need.compute,
        "ram_available": machine.memory.available,
        "vram_free": machine.gpu.vram_free,
        "fits": fits,
    }
    return Recommendation(
        model_label or info.path, task, values, reasons, memory, _variant_advice(info, task, ram), notes
    )


# -- writing the profile ------------------------------------------------------------------------
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))


_HEADER = re.compile(r"^\s*\[")
_LOAD = re.compile(r"^\s*\[\s*load\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=")
_MARK = "# written by `cgstudio recommend --write`"


def render_load_section(profile: dict[str, Any], keep: Sequence[str] = ()) -> str:
    """``[load]`` with the 13 values (rope as "auto", an unset seed left out), then the ``keep`` lines."""
    lines = ["[load]", _MARK]
    for k in LM_STUDIO_FIELDS:
        v = profile.get(k)
        if v is None and k.startswith("rope_"):
            v = "auto"
        if v is not None:
            lines.append(f"{k} = {_toml_value(v)}")
    body = "\n".join(lines) + "\n"
    kept = "".join(keep).strip("\n")
    return body + (kept + "\n" if kept else "")


def write_profile(profile: dict[str, Any], path: Path) -> Path:
    """Write the 13 values into the [load] table of the TOML profile at ``path``.

    Other tables, top-level keys and other [load] keys (n_parallel, a seed you set, comments) stay.
    """
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = ""
    except OSError as exc:
        raise SettingsError(f"cannot read profile {path}: {exc.strerror}") from exc
    lines = old.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if _LOAD.match(ln)), None)
    if start is None:
        sep = "" if not old or old.endswith("\n\n") else ("\n" if old.endswith("\n") else "\n\n")
        new = old + sep + render_load_section(profile)
    else:
        end = next((j for j in range(start + 1, len(lines)) if _HEADER.match(lines[j])), len(lines))
        written = {k for k in LM_STUDIO_FIELDS if profile.get(k) is not None or k.startswith("rope_")}
        keep = []
        for ln in lines[start + 1 : end]:
            m = _KEY.match(ln)
            if ln.strip() == _MARK or (m and m.group(1) in written):
                continue
            keep.append(ln if ln.endswith("\n") else ln + "\n")
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + render_load_section(profile, keep) + ("\n" + tail if tail else "")
    try:
        LoadProfile.model_validate(tomllib.loads(new).get("load", {}))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise SettingsError(
            f"the profile {path} would not be valid after writing [load] ({exc}); fix it first"
        ) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return path
