"""Write a tiny, random-weight BERT embedding GGUF that llama.cpp loads and pools.

The file has llama.cpp's `bert` architecture (LLM_ARCH_BERT: learned position embeddings, post-norm
layers with biases, GELU FFN) and a WordPiece vocabulary (`tokenizer.ggml.model = "bert"`) laid out as
BERT's uncased vocabulary begins:

    0 [PAD]   1..99 [unused0]..[unused98]   100 [UNK]   101 [CLS]   102 [SEP]   103 [MASK]

After them come word-start pieces (`▁` + a lowercase ASCII character or a code word) and
continuation pieces (the bare characters, as converters write BERT's `##x`), so any ASCII text
tokenizes without [UNK]. llama.cpp adds [CLS] before and [SEP] after every input.

The weights are random, so the vectors mean nothing; but they are deterministic (same text, same
vector), differ between texts, and have `embedding_length` dimensions, which is what tests need.

    python -m cgstudio.testing.synthetic_embedding OUT.gguf [--pooling mean|cls|last|none|rank]
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cgstudio.testing.gguf_file import (
    CONTROL,
    NORMAL,
    SPACE,
    UNKNOWN,
    Tensors,
    check_unique,
    shape_hparams,
    write_gguf,
)

__all__ = [
    "CLS_ID",
    "MASK_ID",
    "PAD_ID",
    "SEP_ID",
    "UNK_ID",
    "Pooling",
    "build_wordpiece_vocab",
    "write_bert_embedding_gguf",
]

#: The `bert.pooling_type` to write, by llama.cpp's names (LLAMA_POOLING_TYPE_*); None writes no key.
Pooling = Literal["none", "mean", "cls", "last", "rank"]
POOLING_IDS: dict[str, int] = {"none": 0, "mean": 1, "cls": 2, "last": 3, "rank": 4}

PAD_ID = 0
UNK_ID = 100
CLS_ID = 101
SEP_ID = 102
MASK_ID = 103
_N_RESERVED = 104

_WORDS: tuple[str, ...] = (
    "def", "return", "class", "import", "from", "self", "print", "if", "else", "for", "while", "in",
    "function", "const", "let", "var", "int", "str", "list", "dict", "none", "true", "false", "the",
    "hello", "world", "sort", "sum", "add", "file", "test", "data", "value", "result", "main", "name",
)  # fmt: skip


def build_wordpiece_vocab() -> list[tuple[str, int]]:
    """(text, token type) by id: the reserved BERT ids, then word-start and continuation pieces."""
    vocab: list[tuple[str, int]] = []
    for token_id in range(_N_RESERVED):
        text = {PAD_ID: "[PAD]", UNK_ID: "[UNK]", CLS_ID: "[CLS]", SEP_ID: "[SEP]", MASK_ID: "[MASK]"}.get(
            token_id, f"[unused{token_id - 1}]"
        )
        vocab.append((text, UNKNOWN if token_id == UNK_ID else CONTROL))
    # BERT lowercases (llama.cpp's default normalizer), so upper-case letters never reach the vocabulary.
    chars = [chr(c) for c in range(0x21, 0x7F) if not chr(c).isupper()]
    pieces = [SPACE + c for c in chars] + chars + [SPACE + w for w in _WORDS]
    vocab += [(piece, NORMAL) for piece in pieces]
    check_unique((text for text, _ in vocab), "synthetic WordPiece vocabulary")
    return vocab


def write_bert_embedding_gguf(
    path: Path | str,
    *,
    name: str = "tiny-bert-embed",
    n_layers: int = 2,
    n_embd: int = 32,
    n_ff: int = 64,
    n_head: int = 4,
    context_length: int = 128,
    pooling: Pooling | None = "mean",
    seed: int = 0,
    hparam_overrides: Mapping[str, int | str] | None = None,
) -> Path:
    """Write a tiny random-weight BERT embedding GGUF to `path` (replaced atomically); return the path.

    Args:
        path: output file.
        name: `general.name`.
        n_layers, n_embd, n_ff, n_head: model shape (`bert.*` keys); the head size is n_embd // n_head.
        context_length: `bert.context_length`, also the rows of the position embeddings: inputs longer
            than this cannot be embedded.
        pooling: `bert.pooling_type` ("mean" as sentence-transformers' MiniLM/BGE conversions, "cls",
            "last", "none", or "rank" for a reranker); None leaves the key out.
        seed: seed of the weights; the same arguments always give the same bytes.
        hparam_overrides: `bert.*` metadata written instead of (or besides) the shape's values, e.g.
            {"attention.key_length": 4} for a file llama.cpp would abort on. Integers are written as
            uint32 (int64 when out of its range), strings as strings.
    """
    import gguf  # deferred: importing gguf is slow-ish and only needed here

    if n_layers < 1 or n_embd < 1 or n_ff < 1 or n_head < 1 or context_length < 1:
        raise ValueError("n_layers, n_embd, n_ff, n_head and context_length must be positive")
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
    if pooling is not None and pooling not in POOLING_IDS:
        raise ValueError(f"pooling must be one of {', '.join(POOLING_IDS)} or None, not {pooling!r}")

    vocab = build_wordpiece_vocab()
    hparams = shape_hparams(
        context_length=context_length, n_embd=n_embd, n_layers=n_layers, n_ff=n_ff, n_head=n_head
    )
    if pooling is not None:
        hparams["pooling_type"] = POOLING_IDS[pooling]
    hparams.update(hparam_overrides or {})

    def add_metadata(writer: Any) -> None:
        writer.add_layer_norm_eps(1e-12)
        writer.add_causal_attention(False)
        writer.add_tokenizer_model("bert")
        writer.add_token_list([text for text, _ in vocab])
        writer.add_token_types([kind for _, kind in vocab])
        writer.add_token_type_count(2)
        writer.add_bos_token_id(CLS_ID)  # llama.cpp's WPM tokenizer uses BOS as [CLS]
        writer.add_sep_token_id(SEP_ID)
        writer.add_unk_token_id(UNK_ID)
        writer.add_pad_token_id(PAD_ID)
        writer.add_mask_token_id(MASK_ID)

    return write_gguf(
        path,
        arch="bert",
        name=name,
        file_type=gguf.LlamaFileType.ALL_F32,
        hparams=hparams,
        add_metadata=add_metadata,
        tensors=lambda: _weights(
            rng=np.random.default_rng(seed),
            n_vocab=len(vocab),
            n_layers=n_layers,
            n_embd=n_embd,
            n_ff=n_ff,
            n_pos=context_length,
        ),
    )


def _weights(
    *, rng: np.random.Generator, n_vocab: int, n_layers: int, n_embd: int, n_ff: int, n_pos: int
) -> Tensors:
    """The tensors of LLM_ARCH_BERT in numpy (row-major) shape, i.e. reversed ggml `ne` order."""

    def matrix(rows: int, cols: int, scale: float = 0.1) -> np.ndarray:
        return rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(scale)

    def vector(n: int, centre: float = 0.0) -> np.ndarray:
        return (centre + rng.standard_normal(n, dtype=np.float32) * 0.02).astype(np.float32)

    # Every dense layer and layer norm of BERT has a bias. The order of the calls fixes the weights.
    def dense(name: str, rows: int, cols: int) -> Tensors:
        return [(f"{name}.weight", matrix(rows, cols)), (f"{name}.bias", vector(rows))]

    def layer_norm(name: str) -> Tensors:
        return [(f"{name}.weight", vector(n_embd, 1.0)), (f"{name}.bias", vector(n_embd))]

    tensors: Tensors = [
        ("token_embd.weight", matrix(n_vocab, n_embd, 1.0)),
        ("token_types.weight", matrix(2, n_embd)),
        ("position_embd.weight", matrix(n_pos, n_embd)),
        *layer_norm("token_embd_norm"),
    ]
    for i in range(n_layers):
        blk = f"blk.{i}"
        for projection in ("attn_q", "attn_k", "attn_v", "attn_output"):
            tensors += dense(f"{blk}.{projection}", n_embd, n_embd)
        tensors += layer_norm(f"{blk}.attn_output_norm")
        tensors += dense(f"{blk}.ffn_up", n_ff, n_embd)
        tensors += dense(f"{blk}.ffn_down", n_embd, n_ff)
        tensors += layer_norm(f"{blk}.layer_output_norm")
    return tensors


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write one synthetic BERT embedding GGUF and print its path."""
    parser = argparse.ArgumentParser(
        prog="python -m cgstudio.testing.synthetic_embedding", description=__doc__
    )
    parser.add_argument("output", type=Path)
    parser.add_argument("--pooling", choices=sorted(POOLING_IDS), default="mean")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(write_bert_embedding_gguf(args.output, pooling=args.pooling, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
