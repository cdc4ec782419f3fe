"""Write a tiny, random-weight CodeGemma-shaped GGUF that llama.cpp loads and runs.

The file has llama.cpp's `gemma` architecture (LLM_ARCH_GEMMA: RMS norms, GeGLU FFN, output tied to
`token_embd.weight`) and a SentencePiece-style (`tokenizer.ggml.model = "llama"`) vocabulary that puts
CodeGemma's special tokens at CodeGemma's ids:

    0 pad   1 eos   2 bos   3 unk
    67 FIM prefix   68 FIM middle   69 FIM suffix   70 file separator
    106 start of turn   107 end of turn

(the spellings are ``cgstudio.families.codegemma``'s and ``cgstudio.families.gemma``'s).

Every other id below 108 is a placeholder (`<mask>`, `<2mass>`, `[@BOS@]`, `<unusedN>`, as in Gemma).
After them come about 680 code-ish text pieces (single printable ASCII characters, `▁` runs for
spaces, newlines, keywords) and the 256 byte tokens `<0x00>`..`<0xFF>`, so any UTF-8 text tokenizes
(byte fallback) and detokenizes back to itself. Multi-character pieces are prefix-closed, so llama.cpp's
SPM merge loop can reach each of them.

Converters disagree on the type of the FIM and turn tokens (CONTROL or USER_DEFINED); pick with
`special_token_type`. Note that llama.cpp itself adds the CONTROL attribute to the end-of-turn token (an
end-of-generation token) whatever the file says, and to the FIM prefix/middle/suffix
tokens when their ids are not given in the metadata (`fim_id_keys="none"`), because it then
finds them by their text.

    python -m cgstudio.testing.synthetic_gguf OUT.gguf [--user-defined] [--no-fim]
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cgstudio.families import codegemma, gemma
from cgstudio.testing.gguf_file import (
    BYTE,
    CONTROL,
    NORMAL,
    SPACE,
    UNKNOWN,
    USER_DEFINED,
    Tensors,
    check_unique,
    shape_hparams,
    write_gguf,
)

__all__ = [
    "BOS_ID",
    "CODEGEMMA_CHAT_TEMPLATE",
    "EOS_ID",
    "EOT_ID",
    "FILE_SEPARATOR_ID",
    "FIM_IDS",
    "FIM_MIDDLE_ID",
    "FIM_PREFIX_ID",
    "FIM_SUFFIX_ID",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "START_OF_TURN_ID",
    "UNK_ID",
    "FimIdKeys",
    "SpecialTokenType",
    "VocabEntry",
    "build_vocab",
    "write_codegemma_gguf",
]

#: Token type given to the FIM and turn tokens: CONTROL or USER_DEFINED (converters differ).
SpecialTokenType = Literal["control", "user_defined"]
#: Which metadata keys carry the FIM ids: modern `fim_*`, deprecated `prefix/suffix/middle`, or none.
FimIdKeys = Literal["fim", "legacy", "none"]

PAD_ID = 0
EOS_ID = 1
BOS_ID = 2
UNK_ID = 3
FIM_PREFIX_ID = 67
FIM_MIDDLE_ID = 68
FIM_SUFFIX_ID = 69
FILE_SEPARATOR_ID = 70
START_OF_TURN_ID = 106
EOT_ID = 107

#: CodeGemma's special tokens by id (the FIM ones are absent from a file written with include_fim=False).
SPECIAL_TOKENS: dict[int, str] = {
    PAD_ID: gemma.PAD,
    EOS_ID: gemma.EOS,
    BOS_ID: gemma.BOS,
    UNK_ID: gemma.UNK,
    FIM_PREFIX_ID: codegemma.FIM_PREFIX,
    FIM_MIDDLE_ID: codegemma.FIM_MIDDLE,
    FIM_SUFFIX_ID: codegemma.FIM_SUFFIX,
    FILE_SEPARATOR_ID: codegemma.FILE_SEPARATOR,
    START_OF_TURN_ID: gemma.START_OF_TURN,
    EOT_ID: gemma.END_OF_TURN,
}
FIM_IDS: tuple[int, ...] = (FIM_PREFIX_ID, FIM_MIDDLE_ID, FIM_SUFFIX_ID, FILE_SEPARATOR_ID)

#: Gemma's instruction-tuned chat template (what codegemma-*-it ships), for files that want one.
CODEGEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '"
    + gemma.START_OF_TURN
    + "' + role + '\n' + message['content'] | trim + '"
    + gemma.END_OF_TURN
    + "\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{'" + gemma.START_OF_TURN + "model\n'}}{% endif %}"
)

_N_PLACEHOLDER_END = 108  # ids [0, 108) are special or placeholder tokens, as in Gemma

# Words for the vocabulary; each also gets a "▁"-prefixed twin, and every prefix of every piece is added.
_WORDS: tuple[str, ...] = (
    "def", "return", "class", "import", "from", "self", "print", "if", "else", "elif", "for", "while",
    "in", "is", "not", "and", "or", "None", "True", "False", "pass", "with", "as", "try", "except",
    "raise", "lambda", "yield", "async", "await", "function", "const", "let", "var", "int", "str",
    "float", "bool", "list", "dict", "len", "range", "main", "value", "result", "name", "data", "args",
    "kwargs", "__init__", "__name__", "__main__", "fn", "pub", "struct", "impl", "use", "include",
    "std", "void", "char", "public", "static", "new", "this", "null", "the", "hello", "Hello", "world",
    "test", "fib", "add", "sum", "code", "file", "line", "x", "y", "n", "i", "a", "b",
)  # fmt: skip
_SYMBOLS: tuple[str, ...] = (
    "==", "!=", "<=", ">=", "->", "=>", "+=", "-=", "**", "//", "()", "():", "):", "()\n", "[]", "{}",
    "::", "...", "''", '""', "\"\"\"", ":\n", "#", "##", "=", "+", "-", "*", "/", "(", "#include",
)  # fmt: skip
_WHITESPACE: tuple[str, ...] = (
    SPACE * 8, "\n", "\n\n", "\n" + SPACE * 4, "\n" + SPACE * 8, "\t", "\n\t",
)  # fmt: skip


@dataclass(frozen=True)
class VocabEntry:
    """One vocabulary entry as written to the GGUF: its text, SentencePiece score and token type."""

    text: str
    score: float
    token_type: int


def _text_pieces() -> list[str]:
    """The ordinary (NORMAL) text pieces, prefix-closed, in a fixed order, without duplicates."""
    seeds: list[str] = list(_WHITESPACE)
    seeds += [chr(c) for c in range(0x21, 0x7F)]  # every printable ASCII character but the space
    seeds += [*_WORDS, *(SPACE + w for w in _WORDS)]
    seeds += [*_SYMBOLS, *(SPACE + s for s in _SYMBOLS)]
    pieces: list[str] = []
    seen: set[str] = set()
    for seed in seeds:
        for end in range(1, len(seed) + 1):
            piece = seed[:end]
            if piece not in seen:
                seen.add(piece)
                pieces.append(piece)
    return pieces


def build_vocab(
    *,
    special_token_type: SpecialTokenType = "control",
    include_fim: bool = True,
    extra_special_tokens: Mapping[int, str] | None = None,
) -> list[VocabEntry]:
    """The synthetic CodeGemma vocabulary, indexed by token id.

    `special_token_type` is the type of the FIM and turn tokens (67..70, 106, 107); `include_fim=False`
    puts `<unusedN>` placeholders at 67..70 instead of the FIM tokens. `extra_special_tokens` puts
    more special tokens (of `special_token_type`) at placeholder ids (7..66, 71..105).
    """
    extra = dict(extra_special_tokens or {})
    for token_id in extra:
        if token_id in SPECIAL_TOKENS or not 7 <= token_id < _N_PLACEHOLDER_END:
            raise ValueError(
                f"extra special token id {token_id} is not a placeholder id (7..105, not 67..70)"
            )
    if special_token_type not in ("control", "user_defined"):
        raise ValueError(
            f"special_token_type must be 'control' or 'user_defined', not {special_token_type!r}"
        )
    marked = CONTROL if special_token_type == "control" else USER_DEFINED

    vocab: list[VocabEntry] = []
    for token_id in range(_N_PLACEHOLDER_END):
        text = SPECIAL_TOKENS.get(token_id, extra.get(token_id))
        if token_id in FIM_IDS and not include_fim:
            text = None
        if text is None:  # Gemma's layout: <mask>, <2mass>, [@BOS@], then <unused0>.. from id 7
            text = {4: "<mask>", 5: "<2mass>", 6: "[@BOS@]"}.get(token_id, f"<unused{token_id - 7}>")
            vocab.append(VocabEntry(text, 0.0, CONTROL))
        elif token_id == UNK_ID:
            vocab.append(VocabEntry(text, 0.0, UNKNOWN))
        elif token_id in (PAD_ID, EOS_ID, BOS_ID):
            vocab.append(VocabEntry(text, 0.0, CONTROL))
        else:
            vocab.append(VocabEntry(text, 0.0, marked))

    pieces = _text_pieces()
    # SentencePiece scores: earlier (more frequent) pieces score higher; multi-character pieces come
    # after the single characters they are built from.
    vocab += [VocabEntry(piece, -float(rank), NORMAL) for rank, piece in enumerate(pieces)]
    vocab += [VocabEntry(f"<0x{b:02X}>", 0.0, BYTE) for b in range(256)]

    check_unique((entry.text for entry in vocab), "synthetic vocabulary")
    return vocab


def write_codegemma_gguf(
    path: Path | str,
    *,
    special_token_type: SpecialTokenType = "control",
    name: str = "codegemma-2b",
    n_layers: int = 2,
    n_embd: int = 64,
    n_ff: int = 128,
    n_head: int = 4,
    n_head_kv: int = 1,
    context_length: int = 8192,
    chat_template: str | None = None,
    add_space_prefix: bool = False,
    include_fim: bool = True,
    fim_id_keys: FimIdKeys = "fim",
    extra_special_tokens: Mapping[int, str] | None = None,
    f16: bool = False,
    seed: int = 0,
    weight_scale: float = 0.02,
    hparam_overrides: Mapping[str, int | str] | None = None,
) -> Path:
    """Write a tiny random-weight CodeGemma GGUF to `path` (replaced atomically) and return the path.

    Args:
        path: output file.
        special_token_type: token type of the FIM tokens (67..70) and turn tokens (106, 107):
            "control" (CONTROL) or "user_defined" (USER_DEFINED), as different converters write them.
        name: `general.name`.
        n_layers, n_embd, n_ff, n_head, n_head_kv: model shape (`gemma.*` keys); the head size is
            n_embd // n_head. n_head_kv=1 is multi-query attention, as codegemma-2b.
        context_length: `gemma.context_length` (the training context).
        chat_template: written as `tokenizer.chat_template` when given (see CODEGEMMA_CHAT_TEMPLATE).
        add_space_prefix: `tokenizer.ggml.add_space_prefix` (False in real Gemma files).
        include_fim: False replaces the FIM tokens 67..70 by `<unusedN>` placeholders and writes no FIM
            id keys, for a "model without FIM".
        fim_id_keys: which metadata keys carry the FIM ids (when include_fim): "fim" writes
            tokenizer.ggml.fim_{pre,suf,mid,sep}_token_id, "legacy" the deprecated
            tokenizer.ggml.{prefix,suffix,middle}_token_id, "none" nothing (llama.cpp then finds the
            prefix/middle/suffix tokens by their text and forces them to CONTROL).
        extra_special_tokens: more special tokens by id, at placeholder ids (see ``build_vocab``), e.g.
            another family's FIM tokens.
        f16: store the 2-D weights as float16 (file type MOSTLY_F16) instead of float32.
        seed: seed of the weights; the same arguments always give the same bytes.
        weight_scale: standard deviation of the 2-D weights. At the default 0.02 each position's own
            embedding dominates and greedy output hardly depends on the context; 0.5 makes it
            depend on the context (for tests of what a stale KV cache changes).
        hparam_overrides: `gemma.*` metadata written instead of the values the shape gives (the
            tensors keep the real shape), or added: e.g. {"block_count": 2**31} or
            {"attention.head_count": 0} for the hostile files llama.cpp would abort on. Integers
            are written as uint32 (int64 when out of its range), strings as strings.
    """
    import gguf  # imported here: importing gguf is slow (numpy), and only writing needs it

    if n_layers < 1 or n_embd < 1 or n_ff < 1 or n_head < 1 or n_head_kv < 1:
        raise ValueError("n_layers, n_embd, n_ff, n_head and n_head_kv must be positive")
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be a multiple of n_head ({n_head})")
    if n_head % n_head_kv:
        raise ValueError(f"n_head ({n_head}) must be a multiple of n_head_kv ({n_head_kv})")
    if fim_id_keys not in ("fim", "legacy", "none"):
        raise ValueError(f"fim_id_keys must be 'fim', 'legacy' or 'none', not {fim_id_keys!r}")

    vocab = build_vocab(
        special_token_type=special_token_type,
        include_fim=include_fim,
        extra_special_tokens=extra_special_tokens,
    )
    head_dim = n_embd // n_head
    hparams = shape_hparams(
        context_length=context_length, n_embd=n_embd, n_layers=n_layers, n_ff=n_ff, n_head=n_head
    )
    hparams["attention.head_count_kv"] = n_head_kv
    hparams["attention.key_length"] = head_dim
    hparams["attention.value_length"] = head_dim
    hparams.update(hparam_overrides or {})

    def add_metadata(writer: Any) -> None:
        writer.add_layer_norm_rms_eps(1e-6)
        writer.add_tokenizer_model("llama")
        writer.add_token_list([entry.text for entry in vocab])
        writer.add_token_scores([entry.score for entry in vocab])
        writer.add_token_types([entry.token_type for entry in vocab])
        writer.add_bos_token_id(BOS_ID)
        writer.add_eos_token_id(EOS_ID)
        writer.add_unk_token_id(UNK_ID)
        writer.add_pad_token_id(PAD_ID)
        writer.add_eot_token_id(EOT_ID)
        if include_fim and fim_id_keys == "fim":
            writer.add_uint32(gguf.Keys.Tokenizer.FIM_PRE_ID, FIM_PREFIX_ID)
            writer.add_uint32(gguf.Keys.Tokenizer.FIM_SUF_ID, FIM_SUFFIX_ID)
            writer.add_uint32(gguf.Keys.Tokenizer.FIM_MID_ID, FIM_MIDDLE_ID)
            writer.add_uint32(gguf.Keys.Tokenizer.FIM_SEP_ID, FILE_SEPARATOR_ID)
        elif include_fim and fim_id_keys == "legacy":
            writer.add_uint32(gguf.Keys.Tokenizer.PREFIX_ID, FIM_PREFIX_ID)
            writer.add_uint32(gguf.Keys.Tokenizer.SUFFIX_ID, FIM_SUFFIX_ID)
            writer.add_uint32(gguf.Keys.Tokenizer.MIDDLE_ID, FIM_MIDDLE_ID)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
        writer.add_add_space_prefix(add_space_prefix)
        if chat_template is not None:
            writer.add_chat_template(chat_template)

    return write_gguf(
        path,
        arch="gemma",
        name=name,
        file_type=gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32,
        hparams=hparams,
        add_metadata=add_metadata,
        tensors=lambda: _weights(
            rng=np.random.default_rng(seed),
            n_vocab=len(vocab),
            n_layers=n_layers,
            n_embd=n_embd,
            n_ff=n_ff,
            q_dim=n_head * head_dim,
            kv_dim=n_head_kv * head_dim,
            f16=f16,
            scale=weight_scale,
        ),
    )


def _weights(
    *,
    rng: np.random.Generator,
    n_vocab: int,
    n_layers: int,
    n_embd: int,
    n_ff: int,
    q_dim: int,
    kv_dim: int,
    f16: bool,
    scale: float,
) -> Tensors:
    """The tensors of LLM_ARCH_GEMMA in numpy (row-major) shape, i.e. reversed ggml `ne` order."""
    matrix_dtype = np.float16 if f16 else np.float32

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols), dtype=np.float32) * scale).astype(matrix_dtype)

    def norm() -> np.ndarray:  # norms stay float32, as llama.cpp's converters write them
        return (1.0 + rng.standard_normal(n_embd, dtype=np.float32) * 0.02).astype(np.float32)

    tensors: Tensors = [("token_embd.weight", matrix(n_vocab, n_embd))]
    for i in range(n_layers):
        tensors += [
            (f"blk.{i}.attn_norm.weight", norm()),
            (f"blk.{i}.attn_q.weight", matrix(q_dim, n_embd)),
            (f"blk.{i}.attn_k.weight", matrix(kv_dim, n_embd)),
            (f"blk.{i}.attn_v.weight", matrix(kv_dim, n_embd)),
            (f"blk.{i}.attn_output.weight", matrix(n_embd, q_dim)),
            (f"blk.{i}.ffn_norm.weight", norm()),
            (f"blk.{i}.ffn_gate.weight", matrix(n_ff, n_embd)),
            (f"blk.{i}.ffn_up.weight", matrix(n_ff, n_embd)),
            (f"blk.{i}.ffn_down.weight", matrix(n_embd, n_ff)),
        ]
    tensors.append(("output_norm.weight", norm()))
    return tensors


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write one synthetic CodeGemma GGUF and print its path."""
    parser = argparse.ArgumentParser(prog="python -m cgstudio.testing.synthetic_gguf", description=__doc__)
    parser.add_argument("output", type=Path)
    parser.add_argument("--user-defined", action="store_true", help="type FIM/turn tokens USER_DEFINED")
    parser.add_argument("--no-fim", action="store_true", help="leave the FIM tokens out")
    parser.add_argument("--chat-template", action="store_true", help="embed Gemma's chat template")
    parser.add_argument("--name", default="codegemma-2b")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = write_codegemma_gguf(
        args.output,
        special_token_type="user_defined" if args.user_defined else "control",
        include_fim=not args.no_fim,
        chat_template=CODEGEMMA_CHAT_TEMPLATE if args.chat_template else None,
        name=args.name,
        seed=args.seed,
    )
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
