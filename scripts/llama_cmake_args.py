#!/usr/bin/env python3
"""Print CMAKE_ARGS for a portable llama.cpp CPU build derived from this CPU's features.

Why: a native (-march=native) build enables AMX on Sapphire Rapids, and
``ggml_backend_amx_mul_mat`` segfaults on these VMs. We therefore switch GGML_NATIVE
off and turn on each SIMD extension the CPU reports, leaving AMX off explicitly.
``LLAVA_BUILD=OFF`` skips llama-cpp-python's multimodal library (libmtmd), which cgstudio
never loads (llama_cpp imports it only for its multimodal chat handlers).

Environment overrides:
  CGSTUDIO_GPU=cuda|metal|vulkan   add the GPU backend flag (see README "GPU builds").
  CGSTUDIO_EXTRA_CMAKE_ARGS        appended verbatim.
Stdlib only: it runs before the venv has anything installed.
"""

from __future__ import annotations

import os
import platform
import sys

# cpuinfo flag -> GGML cmake option. Order matters only for readability.
X86_FLAGS: list[tuple[str, str]] = [
    ("avx", "GGML_AVX"),
    ("avx2", "GGML_AVX2"),
    ("fma", "GGML_FMA"),
    ("f16c", "GGML_F16C"),
    ("bmi2", "GGML_BMI2"),
    ("avx512f", "GGML_AVX512"),
    ("avx512_vnni", "GGML_AVX512_VNNI"),
    ("avx512_bf16", "GGML_AVX512_BF16"),
    ("avx512vbmi", "GGML_AVX512_VBMI"),
    ("avx_vnni", "GGML_AVX_VNNI"),
]
# Never enabled: the AMX path is what crashes.
ALWAYS_OFF = ["GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"]
# Parts of llama-cpp-python's build that cgstudio never loads.
TRIM = ["-DLLAVA_BUILD=OFF"]
GPU_FLAGS = {"cuda": "GGML_CUDA", "metal": "GGML_METAL", "vulkan": "GGML_VULKAN"}


def cpu_flags(cpuinfo_text: str) -> set[str]:
    for line in cpuinfo_text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cmake_args(flags: set[str], machine: str, gpu: str | None = None) -> list[str]:
    args: list[str] = list(TRIM)
    if machine in ("x86_64", "amd64", "AMD64"):
        args.append("-DGGML_NATIVE=OFF")
        for flag, option in X86_FLAGS:
            args.append(f"-D{option}={'ON' if flag in flags else 'OFF'}")
        args.extend(f"-D{option}=OFF" for option in ALWAYS_OFF)
    # On arm64 (Apple Silicon, Graviton) the native build is safe and fastest.
    if gpu:
        if gpu not in GPU_FLAGS:
            raise SystemExit(f"CGSTUDIO_GPU must be one of {sorted(GPU_FLAGS)}, got {gpu!r}")
        args.append(f"-D{GPU_FLAGS[gpu]}=ON")
    return args


def current_args() -> str:
    """The CMAKE_ARGS for this machine and environment, as one string."""
    text = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    args = cmake_args(cpu_flags(text), platform.machine(), os.environ.get("CGSTUDIO_GPU") or None)
    extra = os.environ.get("CGSTUDIO_EXTRA_CMAKE_ARGS", "").strip()
    if extra:
        args.append(extra)
    return " ".join(args)


def main() -> int:
    sys.stdout.write(current_args() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
