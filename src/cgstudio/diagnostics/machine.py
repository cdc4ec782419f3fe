"""Machine checks: the CPU against the llama.cpp build (AMX crash hazard, unused AVX2/AVX-512,
instructions the CPU lacks), the GPU and whether the build can use it, RAM/VRAM against the model
and its KV cache, threads against physical cores."""

from __future__ import annotations

from cgstudio.core.engine import ModelInfo
from cgstudio.core.settings import LoadProfile
from cgstudio.diagnostics.check import Check
from cgstudio.diagnostics.hardware import SIMD_FEATURES, Machine
from cgstudio.diagnostics.memory import estimate, gib

REBUILD = "rebuild llama-cpp-python with portable flags: `make llama` (scripts/llama_cmake_args.py)"


def check_cpu(machine: Machine) -> Check:
    cpu, build = machine.cpu, machine.build
    if not cpu.is_x86:
        return Check("cpu.instructions", "ok", f"{cpu.machine} CPU: a native build is safe")
    if not build.features:
        return Check(
            "cpu.instructions",
            "warn",
            "could not read llama.cpp's system info (llama_print_system_info)",
            "check that llama-cpp-python imports: python -c 'import llama_cpp'",
        )
    amx_build = [n for n in ("AMX_INT8", "AMX_BF16", "AMX_TILE") if build.features.get(n)]
    amx_args = [o for o in ("GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16") if build.cmake_on(o)]
    native = build.cmake_on("GGML_NATIVE")
    if cpu.has_amx and (amx_build or amx_args or native):
        why = ", ".join(amx_build + amx_args) or "GGML_NATIVE=ON (a native build turns AMX on here)"
        return Check(
            "cpu.instructions",
            "fail",
            f"this CPU has AMX and llama.cpp was built with it ({why}): the AMX matmul path "
            "(ggml_backend_amx_mul_mat) segfaults on these machines",
            f"{REBUILD}; it sets GGML_NATIVE=OFF and GGML_AMX_*=OFF",
        )
    illegal = [n for n, flag in SIMD_FEATURES.items() if build.features.get(n) and flag not in cpu.flags]
    if illegal and cpu.flags:
        return Check(
            "cpu.instructions",
            "fail",
            f"llama.cpp uses {', '.join(illegal)}, which this CPU lacks: "
            "it will crash with an illegal instruction",
            REBUILD,
        )
    unused = [n for n, flag in SIMD_FEATURES.items() if flag in cpu.flags and not build.features.get(n)]
    fast = [n for n in unused if n.startswith(("AVX2", "AVX512", "FMA", "F16C", "AVX_VNNI"))]
    used = [n for n, on in build.features.items() if on and n in SIMD_FEATURES]
    amx_note = "; AMX present and correctly off" if cpu.has_amx else ""
    if fast:
        return Check(
            "cpu.instructions",
            "warn",
            f"the CPU has {', '.join(fast)} but llama.cpp was built without them: prompt processing and "
            f"generation are slower than they could be (built with: {', '.join(used) or 'none'}){amx_note}",
            REBUILD,
        )
    return Check("cpu.instructions", "ok", f"llama.cpp uses {', '.join(used) or 'baseline x86'}{amx_note}")


def check_gpu(machine: Machine, profile: LoadProfile) -> Check:
    gpu, offload = machine.gpu, machine.build.gpu_offload
    backend = {"nvidia": "cuda", "metal": "metal", "amd": "vulkan"}.get(gpu.kind, "cuda")
    if gpu.kind == "none":
        if profile.n_gpu_layers != 0:
            return Check(
                "gpu",
                "warn",
                f"--n-gpu-layers {profile.n_gpu_layers} but no GPU was found",
                "use --n-gpu-layers 0",
            )
        return Check(
            "gpu", "ok", "no GPU found: CPU inference" + (" (the build could offload)" if offload else "")
        )
    vram = f", {gib(gpu.vram_total)} ({gib(gpu.vram_free or 0)} free)" if gpu.vram_total else ""
    if not offload:
        return Check(
            "gpu",
            "warn",
            f"{gpu.name}{vram} found, but this llama.cpp build cannot offload to it (CPU only)",
            f"rebuild with GPU support: CGSTUDIO_GPU={backend} make llama",
        )
    if profile.n_gpu_layers == 0:
        return Check(
            "gpu",
            "warn",
            f"{gpu.name}{vram} is usable but --n-gpu-layers is 0: the GPU sits idle",
            "`cgstudio recommend` picks the layers that fit (or --n-gpu-layers all)",
        )
    return Check("gpu", "ok", f"{gpu.name}{vram}; the build offloads")


def check_threads(machine: Machine, profile: LoadProfile) -> Check:
    phys, logical = machine.cpu.physical_cores, machine.cpu.logical_cpus
    if profile.n_threads is None:
        return Check("threads", "ok", f"{phys} threads = physical cores ({logical} logical CPUs)")
    if profile.n_threads > phys:
        return Check(
            "threads",
            "warn",
            f"{profile.n_threads} threads for {phys} physical cores ({logical} logical): "
            "hyperthreads share one core's SIMD units, so extra threads slow llama.cpp down",
            f"use --threads {phys} (or leave it unset)",
        )
    return Check("threads", "ok", f"{profile.n_threads} threads of {phys} physical cores")


def check_memory(machine: Machine, profile: LoadProfile, info: ModelInfo | None) -> list[Check]:
    mem = machine.memory
    if info is None:
        return [Check("memory", "ok", f"RAM {gib(mem.available)} available of {gib(mem.total)}")]
    need = estimate(info, profile)
    parts = (
        f"weights {gib(need.weights)} + KV {gib(need.kv)} ({profile.n_ctx} tokens, "
        f"{profile.cache_type_k}/{profile.cache_type_v}) + compute {gib(need.compute)}"
    )
    fix = (
        "`cgstudio recommend` fits the profile to this machine; or lower --ctx-size, use "
        "-fa -ctk q8_0 -ctv q8_0 (half the KV), or a smaller quantization"
    )
    checks: list[Check] = []
    if not mem.total:
        checks.append(Check("memory", "warn", f"needs about {gib(need.ram)} RAM ({parts}); RAM size unknown"))
    elif need.ram > mem.total:
        checks.append(
            Check(
                "memory",
                "fail",
                f"needs about {gib(need.ram)} RAM ({parts}), the machine has {gib(mem.total)}",
                fix,
            )
        )
    elif need.ram > mem.available:
        checks.append(
            Check(
                "memory",
                "warn",
                f"needs about {gib(need.ram)} RAM ({parts}), "
                f"{gib(mem.available)} is free of {gib(mem.total)}: expect swapping",
                "close other programs, or " + fix,
            )
        )
    else:
        checks.append(
            Check(
                "memory",
                "ok",
                f"needs about {gib(need.ram)} RAM ({parts}); {gib(mem.available)} free of {gib(mem.total)}",
            )
        )
    if need.vram:
        free = machine.gpu.vram_free
        if free is None:
            checks.append(
                Check("memory.gpu", "warn", f"needs about {gib(need.vram)} VRAM; free VRAM unknown")
            )
        elif need.vram > free:
            checks.append(
                Check(
                    "memory.gpu",
                    "fail",
                    f"{need.gpu_layers} GPU layers need about {gib(need.vram)} VRAM, {gib(free)} is free",
                    "`cgstudio recommend` picks the GPU layers that fit; or fewer --n-gpu-layers",
                )
            )
        else:
            checks.append(
                Check(
                    "memory.gpu",
                    "ok",
                    f"{need.gpu_layers} GPU layers need about {gib(need.vram)} VRAM; {gib(free)} free",
                )
            )
    return checks


def machine_checks(machine: Machine, profile: LoadProfile, info: ModelInfo | None = None) -> list[Check]:
    return [
        check_cpu(machine),
        check_gpu(machine, profile),
        *check_memory(machine, profile, info),
        check_threads(machine, profile),
    ]
