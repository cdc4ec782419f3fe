"""How much memory a model needs with a load profile, split between RAM and VRAM. Units: bytes.

weights   the GGUF's tensors (the file size is a close upper bound)
kv        layers x (K width x K type size + V width x V type size) x n_ctx x n_parallel (a stream
          of n_ctx cells per slot)
          codegemma-7b: 28 layers x 16 heads x 256 x 2 (K, V) x 2 bytes = 448 KiB/token in F16
compute   llama.cpp's scratch for one micro-batch: the larger of the logits (n_vocab x ubatch x 4)
          and, without flash attention, the KQ scores (n_ctx x ubatch x n_head x 4), plus a margin;
          measured: gemma3-270m 514 MiB (estimate 544), Qwen2.5-Coder-0.5B 300 MiB (estimate 329)
"""

from __future__ import annotations

from dataclasses import dataclass

from cgstudio.core.engine import ModelInfo
from cgstudio.core.settings import LoadProfile

MIB = 1 << 20
GIB = 1 << 30
# bytes per element of each KV cache type (block formats: block bytes / 32 elements)
CACHE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q4_0": 18 / 32,
    "q4_1": 20 / 32,
    "iq4_nl": 18 / 32,
    "q5_0": 22 / 32,
    "q5_1": 24 / 32,
}
HOST_COMPUTE = 256 * MIB  # what stays on the CPU side when the graph runs on a GPU


@dataclass(frozen=True)
class MemoryNeed:
    weights: int
    kv: int
    compute: int
    overhead: int
    gpu_layers: int  # resolved: 0..n_layers
    ram: int  # needed in RAM
    vram: int  # needed on the GPU

    @property
    def total(self) -> int:
        return self.ram + self.vram


def trained_context(info: ModelInfo) -> int:
    """The training context from the GGUF metadata (a vocabulary-only load reports 0 for n_ctx_train)."""
    raw = info.metadata.get(f"{info.architecture}.context_length", "")
    try:
        return int(float(raw)) if raw else info.n_ctx_train
    except ValueError:
        return info.n_ctx_train


def kv_bytes(info: ModelInfo, n_ctx: int, cache_type_k: str = "f16", cache_type_v: str = "f16") -> int:
    per_token = (
        info.n_layers
        * info.n_head_kv
        * (info.key_length * CACHE_BYTES[cache_type_k] + info.value_length * CACHE_BYTES[cache_type_v])
    )
    return int(per_token * n_ctx)


def compute_bytes(info: ModelInfo, n_ctx: int, n_batch: int, flash_attn: bool) -> int:
    ubatch = min(n_batch, 512)
    logits = info.n_vocab * ubatch * 4
    kq = 0 if flash_attn else n_ctx * ubatch * max(info.n_head, 1) * 4
    return max(logits, kq) + 32 * MIB


def estimate(info: ModelInfo, profile: LoadProfile) -> MemoryNeed:
    """RAM and VRAM for ``info`` loaded with ``profile`` (n_gpu_layers -1 = all)."""
    n_layers = max(info.n_layers, 1)
    gpu_layers = n_layers if profile.n_gpu_layers < 0 else min(profile.n_gpu_layers, n_layers)
    weights = info.size_bytes
    # Every slot (n_parallel) has its own stream of n_ctx cells (engine/llamacpp/handle.py).
    cells = profile.n_ctx * max(profile.n_parallel, 1)
    kv = kv_bytes(info, cells, profile.cache_type_k, profile.cache_type_v)
    compute = compute_bytes(info, profile.n_ctx, profile.n_batch, profile.flash_attn)
    overhead = 64 * MIB + weights // 50
    if gpu_layers == 0:
        return MemoryNeed(weights, kv, compute, overhead, 0, weights + kv + compute + overhead, 0)
    # the output layer counts as one more layer; token embeddings stay on the CPU (roughly)
    share = gpu_layers / (n_layers + 1) if gpu_layers < n_layers else n_layers / (n_layers + 1)
    gpu_weights = int(weights * share)
    gpu_kv = int(kv * gpu_layers / n_layers) if profile.offload_kqv else 0
    vram = gpu_weights + gpu_kv + compute
    ram = (weights - gpu_weights) + (kv - gpu_kv) + HOST_COMPUTE + overhead
    return MemoryNeed(weights, kv, compute, overhead, gpu_layers, ram, vram)


def gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"
