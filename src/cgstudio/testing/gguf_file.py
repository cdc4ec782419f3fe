"""The part of writing a synthetic GGUF that does not depend on the architecture.

``synthetic_gguf`` (a CodeGemma-shaped `gemma` model) and ``synthetic_embedding`` (a `bert`
embedder) differ in their vocabulary, their metadata and their tensors; both write the file the
same way, with ``write_gguf``: to a temporary name beside the target, then renamed over it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

# Token types, as gguf.TokenType / llama.cpp's llama_token_type (kept here so that vocabularies can be
# built without importing gguf).
NORMAL = 1
UNKNOWN = 2
CONTROL = 3
USER_DEFINED = 4
BYTE = 6

#: "▁": SentencePiece's stand-in for a space, and llama.cpp's WPM word-start mark.
SPACE = "\u2581"

Tensors = list[tuple[str, np.ndarray]]


def check_unique(texts: Iterable[str], what: str) -> None:
    """Raise AssertionError when two tokens of `what` have the same text: llama.cpp asserts on that."""
    texts = list(texts)
    if len(set(texts)) != len(texts):
        raise AssertionError(f"{what} has duplicate token texts")


def shape_hparams(
    *, context_length: int, n_embd: int, n_layers: int, n_ff: int, n_head: int
) -> dict[str, int | str]:
    """The model-shape keys (without the `{arch}.` prefix) that every llama.cpp architecture reads."""
    return {
        "context_length": context_length,
        "embedding_length": n_embd,
        "block_count": n_layers,
        "feed_forward_length": n_ff,
        "attention.head_count": n_head,
    }


def write_gguf(
    path: Path | str,
    *,
    arch: str,
    name: str,
    file_type: Any,
    hparams: Mapping[str, int | str],
    add_metadata: Callable[[Any], None],
    tensors: Callable[[], Iterable[tuple[str, np.ndarray]]],
) -> Path:
    """Write a GGUF to `path` (replaced atomically) and return the path.

    The metadata is written in this order: `general.architecture` (= `arch`), `general.name`,
    `general.file_type` (a ``gguf.LlamaFileType``), the `hparams` as `{arch}.{key}` (integers as
    uint32, int64 when out of its range; strings as strings), then whatever `add_metadata` adds to
    the ``gguf.GGUFWriter`` it is given. `tensors` is called once, after the metadata, for the
    (name, array) pairs. On any error the temporary file is removed and the target is left as it was.
    """
    import gguf  # imported here: importing gguf is slow (numpy), and only writing needs it

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")

    writer = gguf.GGUFWriter(str(tmp), arch)  # also writes general.architecture
    try:
        writer.add_name(name)
        writer.add_file_type(file_type)
        for key, value in hparams.items():
            if isinstance(value, str):
                writer.add_string(f"{arch}.{key}", value)
            elif 0 <= value < 2**32:
                writer.add_uint32(f"{arch}.{key}", value)
            else:
                writer.add_int64(f"{arch}.{key}", value)
        add_metadata(writer)
        for tensor_name, array in tensors():
            writer.add_tensor(tensor_name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(tmp, path)
    return path
