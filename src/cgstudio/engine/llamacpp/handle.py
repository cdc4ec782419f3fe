"""Model and context handles over llama.cpp's C API, with llama.cpp's log captured."""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import llama_cpp as lc

from cgstudio.core.engine import ModelInfo, TokenKind
from cgstudio.core.errors import ModelLoadError, SettingsError
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp.gguf_check import GGUFHeader, validate_model_file

log = logging.getLogger("cgstudio.llama_cpp")
_LOG_TAIL: deque[str] = deque(maxlen=40)
_init_lock = threading.Lock()
_initialised = False

CACHE_TYPES = {
    "f32": lc.GGML_TYPE_F32,
    "f16": lc.GGML_TYPE_F16,
    "bf16": 30,
    "q8_0": lc.GGML_TYPE_Q8_0,
    "q4_0": lc.GGML_TYPE_Q4_0,
    "q4_1": lc.GGML_TYPE_Q4_1,
    "iq4_nl": 20,
    "q5_0": 6,
    "q5_1": 7,
}


@lc.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    msg = text.decode("utf-8", errors="replace")
    _LOG_TAIL.append(msg)
    if os.environ.get("CGSTUDIO_LLAMA_LOG"):
        log.warning(msg.rstrip())


def _ensure_backend() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            lc.llama_log_set(_log_callback, ctypes.c_void_p(0))
            lc.llama_backend_init()
            _initialised = True


def llama_log_tail(n: int = 6) -> str:
    lines = [ln.strip() for ln in list(_LOG_TAIL)[-n:] if ln.strip()]
    return " | ".join(lines)


def new_context(model: Any, params: Any, profile: LoadProfile, failure: Callable[[str], Exception]) -> Any:
    """``llama_init_from_model`` with the profile's threads and flash attention, and no perf counters.

    Raises ``failure(detail)``, detail being llama.cpp's last log lines, when llama.cpp gives no context.
    """
    threads = profile.n_threads or default_threads()
    params.n_threads = threads
    params.n_threads_batch = threads
    params.flash_attn_type = (
        lc.LLAMA_FLASH_ATTN_TYPE_ENABLED if profile.flash_attn else lc.LLAMA_FLASH_ATTN_TYPE_DISABLED
    )
    params.no_perf = True
    ctx = lc.llama_init_from_model(model, params)
    if not ctx:
        raise failure(llama_log_tail() or "no detail")
    return ctx


def check_gguf_file(path: Path, *, require_hparams: bool = True) -> GGUFHeader:
    """Fail early and clearly on a missing, non-regular, unreadable, non-GGUF or hostile file.

    llama.cpp aborts the process on hyper-parameters it does not expect, so this runs before every
    load (see cgstudio.engine.llamacpp.gguf_check); ``require_hparams=False`` for vocabulary-only loads.
    """
    return validate_model_file(path, require_hparams=require_hparams)


class ModelHandle:
    """A loaded llama_model (weights or vocabulary only) and its vocabulary."""

    def __init__(self, path: Path, profile: LoadProfile, *, vocab_only: bool = False) -> None:
        self.header = check_gguf_file(path, require_hparams=not vocab_only)
        _ensure_backend()
        self.path = path
        params = lc.llama_model_default_params()
        params.n_gpu_layers = profile.n_gpu_layers
        params.vocab_only = vocab_only
        if profile.use_mmap and profile.use_mlock:
            params.load_mode = lc.LLAMA_LOAD_MODE_MMAP_MLOCK
        elif profile.use_mlock:
            params.load_mode = lc.LLAMA_LOAD_MODE_MLOCK
        elif profile.use_mmap:
            params.load_mode = lc.LLAMA_LOAD_MODE_MMAP
        else:
            params.load_mode = lc.LLAMA_LOAD_MODE_NONE
        _LOG_TAIL.clear()
        model = lc.llama_model_load_from_file(os.fsencode(path), params)
        if not model:
            raise ModelLoadError(
                f"llama.cpp could not load {path}: {llama_log_tail() or 'no detail'}; "
                "check the file is complete and its architecture is supported (cgstudio doctor)"
            )
        self.model = model
        self.vocab = lc.llama_model_get_vocab(model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        # One piece buffer per thread: ctypes releases the GIL during the call, so a shared buffer
        # let concurrent streams overwrite each other's text (seen: 2,868 wrong pieces in 4 threads).
        self._local = threading.local()

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(4096)
        n = lc.llama_model_meta_val_str(self.model, key.encode(), buf, ctypes.sizeof(buf))
        if n < 0:
            return None
        if n >= ctypes.sizeof(buf):
            buf = ctypes.create_string_buffer(n + 1)
            lc.llama_model_meta_val_str(self.model, key.encode(), buf, ctypes.sizeof(buf))
        return buf.value.decode("utf-8", errors="replace")

    def all_meta(self) -> dict[str, str]:
        out: dict[str, str] = {}
        count = lc.llama_model_meta_count(self.model)
        kbuf = ctypes.create_string_buffer(512)
        vbuf = ctypes.create_string_buffer(512)
        for i in range(count):
            lc.llama_model_meta_key_by_index(self.model, i, kbuf, ctypes.sizeof(kbuf))
            lc.llama_model_meta_val_str_by_index(self.model, i, vbuf, ctypes.sizeof(vbuf))
            key = kbuf.value.decode("utf-8", errors="replace")
            if key.startswith("tokenizer.ggml.") and key.endswith(
                ("tokens", "scores", "token_type", "merges")
            ):
                continue
            out[key] = vbuf.value.decode("utf-8", errors="replace")
        return out

    def tokenize(self, data: bytes, *, parse_special: bool) -> list[int]:
        n_max = len(data) + 16
        buf = (lc.llama_token * n_max)()
        n = lc.llama_tokenize(self.vocab, data, len(data), buf, n_max, False, parse_special)
        if n < 0:
            n_max = -n
            buf = (lc.llama_token * n_max)()
            n = lc.llama_tokenize(self.vocab, data, len(data), buf, n_max, False, parse_special)
        return list(buf[:n])

    def piece(self, token: int, *, special: bool) -> bytes:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = ctypes.create_string_buffer(256)
        n = lc.llama_token_to_piece(self.vocab, token, buf, 256, 0, special)
        if n < 0:
            big = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, big, -n, 0, special)
            return big.raw[:n]
        return buf.raw[:n]

    def token_kind(self, token: int) -> TokenKind:
        attr = lc.llama_vocab_get_attr(self.vocab, token)
        if attr & lc.LLAMA_TOKEN_ATTR_CONTROL:
            return TokenKind.CONTROL
        if attr & lc.LLAMA_TOKEN_ATTR_USER_DEFINED:
            return TokenKind.USER_DEFINED
        if attr & lc.LLAMA_TOKEN_ATTR_BYTE:
            return TokenKind.BYTE
        if attr & lc.LLAMA_TOKEN_ATTR_UNKNOWN:
            return TokenKind.UNKNOWN
        if attr & lc.LLAMA_TOKEN_ATTR_UNUSED:
            return TokenKind.UNUSED
        return TokenKind.NORMAL

    def model_info(self) -> ModelInfo:
        v = self.vocab
        meta = self.all_meta()
        arch = meta.get("general.architecture", "unknown")
        special: dict[str, int] = {}
        kinds: dict[int, TokenKind] = {}
        for tid in range(self.n_vocab):
            kind = self.token_kind(tid)
            if kind in (TokenKind.CONTROL, TokenKind.USER_DEFINED):
                text = lc.llama_vocab_get_text(v, tid).decode("utf-8", errors="replace")
                special.setdefault(text, tid)
                kinds[tid] = kind

        def tok(x: int) -> int | None:
            return x if x >= 0 else None

        def meta_int(key: str, default: int = 0) -> int:
            raw = meta.get(f"{arch}.{key}")
            try:
                return int(float(raw)) if raw is not None else default
            except ValueError:
                return default

        n_head = meta_int("attention.head_count")
        n_embd = meta_int("embedding_length")
        head_dim = n_embd // n_head if n_head else 0
        template = lc.llama_model_chat_template(self.model, None)
        asp = meta.get("tokenizer.ggml.add_space_prefix")
        desc = ctypes.create_string_buffer(256)
        lc.llama_model_desc(self.model, desc, 256)
        return ModelInfo(
            path=str(self.path),
            architecture=arch,
            name=meta.get("general.name", self.path.stem),
            n_ctx_train=lc.llama_model_n_ctx_train(self.model),
            n_layers=meta_int("block_count"),
            n_head=n_head,
            n_head_kv=meta_int("attention.head_count_kv", n_head),
            key_length=meta_int("attention.key_length", head_dim),
            value_length=meta_int("attention.value_length", head_dim),
            size_bytes=self.path.stat().st_size,
            n_params=lc.llama_model_n_params(self.model),
            quantization=_quantization(meta.get("general.file_type"), desc.value.decode(errors="replace")),
            chat_template=template.decode("utf-8", errors="replace") if template else None,
            bos_id=tok(lc.llama_vocab_bos(v)),
            eos_id=tok(lc.llama_vocab_eos(v)),
            eot_id=tok(lc.llama_vocab_eot(v)),
            add_bos=bool(lc.llama_vocab_get_add_bos(v)),
            add_space_prefix=None if asp is None else asp.lower() == "true",
            n_vocab=self.n_vocab,
            special_tokens=special,
            special_kinds=kinds,
            metadata=meta,
        )

    def close(self) -> None:
        if getattr(self, "model", None):
            lc.llama_model_free(self.model)
            self.model = None

    def __del__(self) -> None:
        self.close()


_FTYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
}


def _quantization(file_type: str | None, desc: str) -> str:
    if file_type is not None:
        try:
            return _FTYPES.get(int(file_type), f"type {file_type}")
        except ValueError:
            pass
    return desc.split(" ", 2)[-1] if desc else "unknown"


class ContextHandle:
    """A llama_context with the profile's parameters applied."""

    def __init__(self, model: ModelHandle, profile: LoadProfile) -> None:
        params = lc.llama_context_default_params()
        n_seq = profile.n_parallel
        _check_cache_types(model.header, profile)
        # Every sequence can reach the full context length. Each slot has its own KV stream, as in
        # llama-server: a sequence's attention covers its own cells, not every other slot's cache
        # (with one unified pool, each step attends over all the cells in use, masked, so the
        # caches kept for reuse in idle slots slow every running sequence down). Shifted reuse
        # (opt-in) evaluates a gap on a scratch sequence that shares part of a slot's cells, which
        # llama.cpp allows only within one stream: it keeps one unified pool and one more id.
        self.unified = profile.kv_shift_reuse
        params.n_ctx = profile.n_ctx * n_seq
        n_seq_max = n_seq + 1 if self.unified else n_seq
        # llama.cpp asserts (aborts the process) when a batch holds more than n_batch tokens, and
        # when n_batch is below n_seq_max (it reserves an output row per sequence); every decode step
        # also carries one token of each generating sequence. So n_batch is at least n_seq_max.
        n_batch = max(profile.n_batch, n_seq_max)
        if n_batch != profile.n_batch:
            log.warning(
                "--batch-size %d is below the %d the engine needs (one per sequence of --parallel %d%s): "
                "using %d",
                profile.n_batch,
                n_seq_max,
                n_seq,
                ", plus a scratch sequence for --kv-shift-reuse" if self.unified else "",
                n_batch,
            )
        params.n_batch = n_batch
        params.n_ubatch = min(n_batch, 512)
        params.n_seq_max = n_seq_max
        params.kv_unified = self.unified
        params.rope_freq_base = profile.rope_freq_base or 0.0
        params.rope_freq_scale = profile.rope_freq_scale or 0.0
        params.type_k = CACHE_TYPES[profile.cache_type_k]
        params.type_v = CACHE_TYPES[profile.cache_type_v]
        params.offload_kqv = profile.offload_kqv
        _LOG_TAIL.clear()
        self.ctx = ctx = new_context(
            model.model,
            params,
            profile,
            lambda detail: SettingsError(
                f"llama.cpp could not create a context with these load parameters: {detail}; "
                "try a smaller --ctx-size or another cache type"
            ),
        )
        self.n_ctx = lc.llama_n_ctx(ctx)
        self.n_ctx_seq = min(profile.n_ctx, int(lc.llama_n_ctx_seq(ctx)))
        # What llama.cpp kept (it caps n_batch at n_ctx): the scheduler never decodes more at once.
        self.n_batch = int(lc.llama_n_batch(ctx))
        self.memory = lc.llama_get_memory(ctx)

    def close(self) -> None:
        if getattr(self, "ctx", None):
            lc.llama_free(self.ctx)
            self.ctx = None

    def __del__(self) -> None:
        self.close()


# ggml block size of each cache type; a quantized cache needs head sizes that are a multiple of it.
_CACHE_BLOCK = {"f32": 1, "f16": 1, "bf16": 1}


def _check_cache_types(header: GGUFHeader, profile: LoadProfile) -> None:
    """Refuse a quantized K/V cache whose blocks do not tile the model's head size."""
    arch = header.architecture
    kv = header.kv
    n_embd, n_head = kv.get(f"{arch}.embedding_length"), kv.get(f"{arch}.attention.head_count")
    default = n_embd // n_head if isinstance(n_embd, int) and isinstance(n_head, int) and n_head else None
    for which, ctype, key in (
        ("k", profile.cache_type_k, "key_length"),
        ("v", profile.cache_type_v, "value_length"),
    ):
        block = _CACHE_BLOCK.get(ctype, 32)
        head = kv.get(f"{arch}.attention.{key}", default)
        if block > 1 and isinstance(head, int) and head % block:
            raise SettingsError(
                f"--cache-type-{which} {ctype} stores blocks of {block} values but this model's heads "
                f"have {head}; use --cache-type-{which} f16 (or q8_0 on a model with larger heads)"
            )


def default_threads() -> int:
    """Physical cores when known (hyperthreads slow llama.cpp down), else logical CPUs."""
    try:
        cores: set[tuple[str, str]] = set()
        phys = core = ""
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("physical id"):
                    phys = line.split(":")[1].strip()
                elif line.startswith("core id"):
                    core = line.split(":")[1].strip()
                    cores.add((phys, core))
        if cores:
            return max(1, min(len(cores), os.cpu_count() or 1))
    except OSError:
        pass
    return max(1, os.cpu_count() or 1)
