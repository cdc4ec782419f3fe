"""Read a GGUF header ourselves and refuse what llama.cpp would abort on, before llama.cpp sees it.

llama.cpp checks a model's hyper-parameters with ``GGML_ASSERT``: a hostile or damaged file does not
fail to load, it kills the process (SIGABRT), and only when the weights load (``inspect`` reads the
vocabulary alone and passes such a file). So every path that opens a model — inspect, the engine's
load, doctor, the store — calls :func:`validate_model_file` first. It reads the header (format:
https://github.com/ggml-org/ggml/blob/master/docs/gguf.md) with bounds on every count and length, so
a lying header cannot make *us* hang or allocate gigabytes either, and checks:

    the path is a regular file (a FIFO would block the open forever, a directory is a mistake)
    magic ``GGUF``, version 2 or 3, a header that ends inside the file
    ``{arch}.block_count`` in 1..LLAMA_MAX_LAYERS (512 in the vendored llama.cpp, llama-hparams.h)
    ``{arch}.attention.head_count`` > 0 (an attention model), ``head_count_kv`` > 0 dividing it
    ``{arch}.embedding_length`` > 0 and equal to the width of ``token_embd.weight``
    ``{arch}.context_length`` in 1..MAX_CONTEXT_LENGTH
    the vocabulary size equal to the rows of ``token_embd.weight``
    expert counts (<= LLAMA_MAX_EXPERTS, used <= count), the rope scaling type llama.cpp knows

Values that are present are always checked; ``require_hparams`` (loading weights) also requires the
keys llama.cpp requires, while ``inspect`` accepts a vocabulary-only file.
"""

from __future__ import annotations

import mmap
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cgstudio.core.errors import ModelFormatError, ModelNotFoundError

LLAMA_MAX_LAYERS = 512  # llama.cpp src/llama-hparams.h (llama-cpp-python 0.3.36)
LLAMA_MAX_EXPERTS = 1024
MAX_CONTEXT_LENGTH = 1 << 26  # 64 Mi tokens: beyond any real model, far below uint32 overflow
MAX_EMBEDDING_LENGTH = 1 << 20
ROPE_SCALING_TYPES = frozenset({"none", "linear", "yarn", "longrope"})
# Architectures without attention heads: head_count 0 is their normal value.
ATTENTION_FREE = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
MAX_KEY_BYTES = 1 << 16
MAX_DIMS = 4  # GGML_MAX_DIMS

# GGUF value types: struct format (little-endian) and size; 8 = string, 9 = array.
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class ArrayInfo:
    """An array value: its element type and length (its elements are not kept)."""

    item_type: int
    length: int
    ints: tuple[int, ...] = ()  # the elements of a short integer array (per-layer hyper-parameters)


@dataclass
class GGUFHeader:
    """What the header says: scalar key/values, array summaries and tensor shapes (ggml ``ne`` order)."""

    path: Path
    version: int
    size: int
    kv: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        arch = self.kv.get("general.architecture")
        return arch if isinstance(arch, str) else None

    @property
    def n_vocab(self) -> int | None:
        tokens = self.kv.get("tokenizer.ggml.tokens")
        return tokens.length if isinstance(tokens, ArrayInfo) else None


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise ModelFormatError(
                f"could not load {self.path}: it is truncated or damaged (its GGUF header runs past "
                f"the end of the file at byte {self.pos}); download it again"
            )

    def scalar(self, t: int) -> Any:
        fmt, size = _SCALARS[t]
        self._need(size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def u32(self) -> int:
        return int(self.scalar(4))

    def u64(self) -> int:
        return int(self.scalar(10))

    def string(self, limit: int | None = None) -> str:
        n = self.u64()
        if limit is not None and n > limit:
            raise ModelFormatError(f"{self.path}: a GGUF key is {n} bytes long; the file is damaged")
        self._need(n)
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def _skip_strings(self, count: int) -> None:
        # A vocabulary is a few hundred thousand strings: one tight loop, bounds checked per string.
        buf, pos, end, length_at = self.buf, self.pos, len(self.buf), _U64.unpack_from
        for _ in range(count):
            if pos + 8 > end:
                break
            pos += 8 + length_at(buf, pos)[0]
            if pos > end:
                break
        else:
            self.pos = pos
            return
        self.pos = pos
        self._need(1 << 62)  # raises: the strings run past the end of the file

    def value(self, t: int) -> Any:
        if t in _SCALARS:
            return self.scalar(t)
        if t == _STRING:
            return self.string()
        if t == _ARRAY:
            item = self.u32()
            length = self.u64()
            if item in _SCALARS:
                size = _SCALARS[item][1]
                self._need(length * size)
                ints: tuple[int, ...] = ()
                if item not in (6, 12) and length <= LLAMA_MAX_LAYERS:
                    fmt = "<" + _SCALARS[item][0][1] * length
                    ints = tuple(int(v) for v in struct.unpack_from(fmt, self.buf, self.pos))
                self.pos += length * size
                return ArrayInfo(item, length, ints)
            if item == _STRING:
                self._need(length * 8)  # each string has at least its 8-byte length
                self._skip_strings(length)
                return ArrayInfo(item, length)
            raise ModelFormatError(f"{self.path}: unsupported GGUF array type {item}; the file is damaged")
        raise ModelFormatError(f"{self.path}: unknown GGUF value type {t}; the file is damaged")


def open_regular(path: Path, what: str = "model file") -> int:
    """Open ``path`` read-only and return the descriptor, refusing anything but a regular file.

    The open does not block (O_NONBLOCK), so a FIFO or a device is refused instead of hanging.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as exc:
        raise ModelNotFoundError(f"{what} not found: {path}") from exc
    except IsADirectoryError as exc:
        raise ModelFormatError(f"{path} is a directory; pass the .gguf file inside it") from exc
    except OSError as exc:
        raise ModelFormatError(f"cannot read {what} {path}: {exc.strerror}") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise ModelFormatError(f"{path} is a directory; pass the .gguf file inside it")
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ModelFormatError(f"{path} is {kind}; a model must be a regular .gguf file")
    return fd


def read_header(path: Path) -> GGUFHeader:
    """Parse the GGUF header of ``path`` (a regular file) without loading any weights."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        if size < 4:
            raise ModelFormatError(f"{path} is not a GGUF file ({size} bytes)")
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as buf:
            return _parse(_Reader(buf, path), path, size)
    except (OSError, ValueError) as exc:
        raise ModelFormatError(f"cannot read model file {path}: {exc}") from exc
    finally:
        os.close(fd)


def _parse(r: _Reader, path: Path, size: int) -> GGUFHeader:
    magic = bytes(r.buf[:4])
    if magic != b"GGUF":
        raise ModelFormatError(
            f"{path} is not a GGUF file (magic {magic!r}); convert it with llama.cpp's "
            "convert_hf_to_gguf.py or download a .gguf build"
        )
    r.pos = 4
    version = r.u32()
    if version not in (2, 3):
        hint = " (a big-endian file?)" if version > 0xFFFF else ""
        raise ModelFormatError(f"{path}: GGUF version {version}{hint} is not supported; use a v3 file")
    n_tensors, n_kv = r.u64(), r.u64()
    # Each key/value takes at least 12 bytes, each tensor info at least 24: a larger count is a lie.
    if n_kv * 12 > size or n_tensors * 24 > size:
        raise ModelFormatError(
            f"{path}: the header claims {n_kv} keys and {n_tensors} tensors, more than the file holds; "
            "the file is damaged"
        )
    header = GGUFHeader(path=path, version=version, size=size)
    for _ in range(n_kv):
        key = r.string(limit=MAX_KEY_BYTES)
        header.kv[key] = r.value(r.u32())
    for _ in range(n_tensors):
        name = r.string(limit=MAX_KEY_BYTES)
        n_dims = r.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise ModelFormatError(f"{path}: tensor {name!r} has {n_dims} dimensions; the file is damaged")
        header.tensors[name] = tuple(r.u64() for _ in range(n_dims))
        r.u32()  # ggml type
        r.u64()  # data offset
    return header


def _ints(value: Any) -> list[int] | None:
    """A scalar or per-layer integer hyper-parameter as a list; None when absent or not integer."""
    if isinstance(value, bool):
        return [int(value)]
    if isinstance(value, int):
        return [value]
    if isinstance(value, ArrayInfo) and value.ints:
        return list(value.ints)
    return None


def check_hparams(h: GGUFHeader, *, require: bool) -> None:
    """Raise ModelFormatError for the hyper-parameters llama.cpp asserts on (see the module docstring)."""
    path, arch = h.path, h.architecture
    fix = "the file is damaged or was crafted; download a current conversion (`cgstudio pull`)"
    if arch is None:
        if require:
            raise ModelFormatError(f"{path} has no general.architecture; {fix}")
        return

    def bad(msg: str) -> ModelFormatError:
        return ModelFormatError(f"{path}: {msg}; {fix}")

    def get(key: str) -> Any:
        return h.kv.get(f"{arch}.{key}")

    def required_int(key: str) -> int | None:
        value = get(key)
        if value is None:
            if require:
                raise bad(f"{arch}.{key} is missing")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad(f"{arch}.{key} is not an integer ({value!r})")
        return value

    n_layer = required_int("block_count")
    if n_layer is not None and not 1 <= n_layer <= LLAMA_MAX_LAYERS:
        raise bad(f"{arch}.block_count is {n_layer}; llama.cpp supports 1 to {LLAMA_MAX_LAYERS} layers")
    n_ctx = required_int("context_length")
    if n_ctx is not None and not 1 <= n_ctx <= MAX_CONTEXT_LENGTH:
        raise bad(f"{arch}.context_length is {n_ctx}; expected 1 to {MAX_CONTEXT_LENGTH}")
    n_embd = required_int("embedding_length")
    if n_embd is not None and not 1 <= n_embd <= MAX_EMBEDDING_LENGTH:
        raise bad(f"{arch}.embedding_length is {n_embd}; expected 1 to {MAX_EMBEDDING_LENGTH}")

    nextn = get("nextn_predict_layers")
    if isinstance(nextn, int) and n_layer is not None and nextn > n_layer:
        raise bad(f"{arch}.nextn_predict_layers ({nextn}) exceeds block_count ({n_layer})")
    _check_heads(h, arch, n_layer, bad)
    _check_experts(get, arch, bad)
    scaling = get("rope.scaling.type")
    if scaling is not None and scaling not in ROPE_SCALING_TYPES:
        known = ", ".join(sorted(ROPE_SCALING_TYPES))
        raise bad(f"{arch}.rope.scaling.type is {scaling!r}; llama.cpp knows {known}")

    embd = h.tensors.get("token_embd.weight")
    if embd is not None and len(embd) == 2:
        if n_embd is not None and embd[0] != n_embd:
            raise bad(f"{arch}.embedding_length is {n_embd} but token_embd.weight is {embd[0]} wide")
        n_vocab = h.n_vocab
        if n_vocab is not None and embd[1] != n_vocab:
            raise bad(f"the vocabulary has {n_vocab} tokens but token_embd.weight has {embd[1]} rows")
    elif require and n_layer is not None and not h.tensors:
        raise bad("the file has no tensors (a vocabulary-only GGUF cannot be loaded as a model)")


def _check_heads(h: GGUFHeader, arch: str, n_layer: int | None, bad: Any) -> None:
    head_raw = h.kv.get(f"{arch}.attention.head_count")
    kv_raw = h.kv.get(f"{arch}.attention.head_count_kv")
    heads, kv_heads = _ints(head_raw), _ints(kv_raw)
    for name, raw, vals in (("head_count", head_raw, heads), ("head_count_kv", kv_raw, kv_heads)):
        if raw is not None and vals is None:
            raise bad(f"{arch}.attention.{name} is not an integer or a per-layer integer array")
        if isinstance(raw, ArrayInfo) and n_layer is not None and raw.length != n_layer:
            raise bad(f"{arch}.attention.{name} has {raw.length} entries for {n_layer} layers")
        if vals is not None and any(v < 0 or v > 1 << 16 for v in vals):
            raise bad(f"{arch}.attention.{name} is out of range ({min(vals)}..{max(vals)})")
    if heads is None or arch in ATTENTION_FREE:
        return
    if max(heads) == 0:
        raise bad(f"{arch}.attention.head_count is 0; an attention model needs at least one head")
    if kv_heads is None:
        return
    n = max(len(heads), len(kv_heads))
    per_layer_kv = isinstance(kv_raw, ArrayInfo)
    for il in range(n):
        hd = heads[il if len(heads) > 1 else 0]
        kv = kv_heads[il if len(kv_heads) > 1 else 0]
        # A per-layer 0 is a layer without attention (hybrid models such as lfm2); a scalar 0 is not.
        if hd and ((kv == 0 and not per_layer_kv) or (kv and hd % kv)):
            raise bad(
                f"{arch}.attention.head_count_kv ({kv}) must be at least 1 and divide "
                f"head_count ({hd})" + (f" in layer {il}" if n > 1 else "")
            )


def _check_experts(get: Any, arch: str, bad: Any) -> None:
    n_expert = get("expert_count")
    used = _ints(get("expert_used_count"))
    if n_expert is None and not used:
        return
    n_expert = n_expert if isinstance(n_expert, int) else 0
    used_max = max(used) if used else 0
    if not 0 <= n_expert <= LLAMA_MAX_EXPERTS:
        raise bad(f"{arch}.expert_count is {n_expert}; llama.cpp supports up to {LLAMA_MAX_EXPERTS}")
    if used_max > n_expert or (n_expert > 0 and used_max == 0):
        raise bad(f"{arch}.expert_used_count ({used_max}) does not fit expert_count ({n_expert})")


def validate_model_file(path: Path, *, require_hparams: bool = True) -> GGUFHeader:
    """The one check before any model file reaches llama.cpp; returns the parsed header.

    ``require_hparams`` (the default: loading weights, doctor) also requires the hyper-parameter keys
    llama.cpp reads; ``False`` (vocabulary only, e.g. ``inspect``) checks only the ones present.
    """
    header = read_header(path)
    check_hparams(header, require=require_hparams)
    return header
