"""What this machine and this llama.cpp build can do: CPU features, cores, RAM, GPU, build flags.

Every probe is best effort and never raises: a value it cannot read is None or empty, and the
checks that use it say so. The dataclasses are plain so tests can describe any machine.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# llama_print_system_info() name -> /proc/cpuinfo flag
SIMD_FEATURES: dict[str, str] = {
    "AVX": "avx",
    "AVX2": "avx2",
    "FMA": "fma",
    "F16C": "f16c",
    "BMI2": "bmi2",
    "AVX512": "avx512f",
    "AVX512_VBMI": "avx512vbmi",
    "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16",
    "AVX_VNNI": "avx_vnni",
}
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class CpuInfo:
    machine: str  # platform.machine(): x86_64, arm64, aarch64, ...
    model_name: str
    flags: frozenset[str]
    physical_cores: int
    logical_cpus: int

    @property
    def is_x86(self) -> bool:
        return self.machine.lower() in ("x86_64", "amd64", "i686", "x86")

    @property
    def has_amx(self) -> bool:
        return any(f in self.flags for f in AMX_FLAGS)


@dataclass(frozen=True)
class BuildInfo:
    """How llama.cpp was built: its own report plus the flags the Makefile recorded."""

    system_info: str
    features: dict[str, bool]  # parsed from system_info, e.g. {"AVX2": True}
    cmake_args: dict[str, str]  # from .venv/.llama-build-args, e.g. {"GGML_AMX_INT8": "OFF"}
    gpu_offload: bool
    build_args_path: str | None = None

    def cmake_on(self, option: str) -> bool | None:
        value = self.cmake_args.get(option)
        return None if value is None else value.upper() in ("ON", "1", "TRUE", "YES")


@dataclass(frozen=True)
class GpuInfo:
    kind: str  # "nvidia", "metal", "amd" or "none"
    name: str = ""
    vram_total: int | None = None  # bytes
    vram_free: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class MemoryInfo:
    total: int  # bytes
    available: int


@dataclass(frozen=True)
class Machine:
    cpu: CpuInfo
    build: BuildInfo
    gpu: GpuInfo
    memory: MemoryInfo
    notes: list[str] = field(default_factory=list)


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str], int]:
    """(model name, flags, physical cores) from /proc/cpuinfo text."""
    flags: frozenset[str] = frozenset()
    name = ""
    cores: set[tuple[str, str]] = set()
    phys = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not flags:
            flags = frozenset(value.split())
        elif key == "model name" and not name:
            name = value.strip()
        elif key == "physical id":
            phys = value.strip()
        elif key == "core id":
            cores.add((phys, value.strip()))
    return name, flags, len(cores)


def detect_cpu() -> CpuInfo:
    logical = os.cpu_count() or 1
    name, flags, physical = "", frozenset[str](), 0
    with contextlib.suppress(OSError):
        name, flags, physical = parse_cpuinfo(
            Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        )
    if not physical:
        try:
            import psutil

            physical = psutil.cpu_count(logical=False) or 0
        except Exception:  # psutil is best effort on exotic platforms
            physical = 0
    return CpuInfo(
        platform.machine(),
        name or platform.processor(),
        flags,
        max(1, min(physical or logical, logical)),
        logical,
    )


def parse_system_info(text: str) -> dict[str, bool]:
    """``CPU : SSE3 = 1 | AVX = 1 | ...`` -> {"SSE3": True, "AVX": True, ...}."""
    return {m.group(1): m.group(2) == "1" for m in re.finditer(r"([A-Z][A-Z0-9_]*)\s*=\s*(\d)", text)}


def parse_build_args(text: str) -> dict[str, str]:
    """``0.3.36 -DGGML_NATIVE=OFF -DGGML_AVX=ON ...`` -> {"GGML_NATIVE": "OFF", "GGML_AVX": "ON", ...}."""
    return {m.group(1): m.group(2) for m in re.finditer(r"-D([A-Za-z0-9_]+)=(\S+)", text)}


def build_args_path() -> Path:
    return Path(sys.prefix) / ".llama-build-args"


def detect_build() -> BuildInfo:
    system_info = ""
    offload = False
    try:
        # Imported here: `cgstudio doctor --help` and the server's start must not load it (start-up).
        import llama_cpp

        raw = llama_cpp.llama_print_system_info()
        system_info = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        offload = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # a broken build is reported by the checks, not raised here
        pass
    args: dict[str, str] = {}
    path = build_args_path()
    try:
        args = parse_build_args(path.read_text(encoding="utf-8"))
    except OSError:
        path_str = None
    else:
        path_str = str(path)
    return BuildInfo(system_info, parse_system_info(system_info), args, offload, path_str)


def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def detect_gpu() -> GpuInfo:
    smi = shutil.which("nvidia-smi")
    if smi:
        out = _run([smi, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"])
        if out and out.strip():
            rows = [r.split(",") for r in out.strip().splitlines()]
            name, total, free = (c.strip() for c in rows[0][:3])
            mib = 1 << 20
            extra = f" (+{len(rows) - 1} more)" if len(rows) > 1 else ""
            return GpuInfo(
                "nvidia", name + extra, int(float(total)) * mib, int(float(free)) * mib, "nvidia-smi"
            )
    if Path("/dev/nvidia0").exists():
        return GpuInfo("nvidia", "NVIDIA GPU", detail="/dev/nvidia0 (nvidia-smi not found)")
    if sys.platform == "darwin" and platform.machine() == "arm64":
        # Apple Silicon: unified memory, Metal can use most of it
        return GpuInfo("metal", "Apple Silicon GPU (Metal)", detail="unified memory")
    if Path("/dev/kfd").exists():
        return GpuInfo("amd", "AMD GPU", detail="/dev/kfd")
    return GpuInfo("none")


def detect_memory() -> MemoryInfo:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return MemoryInfo(int(vm.total), int(vm.available))
    except Exception:  # psutil is a dependency, but do not crash a diagnosis on it
        return MemoryInfo(0, 0)


def detect() -> Machine:
    cpu = detect_cpu()
    gpu = detect_gpu()
    memory = detect_memory()
    if gpu.kind == "metal" and gpu.vram_total is None:
        # Metal's default working set is about 2/3 (small Macs) to 3/4 of unified memory
        gpu = GpuInfo(gpu.kind, gpu.name, int(memory.total * 0.66), int(memory.available * 0.66), gpu.detail)
    return Machine(cpu, detect_build(), gpu, memory)
