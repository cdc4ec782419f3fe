"""The synthetic CodeGemma GGUF: its metadata, and how llama.cpp (llama-cpp-python) loads and tokenizes it.

The tokenization facts checked here are ones the runtime relies on:
- USER_DEFINED special tokens are matched in plain text even with special=False (llama.cpp pre-tokenizes
  them like Hugging Face "added tokens"); CONTROL ones only with special=True.
- llama.cpp forces CONTROL onto `<end_of_turn>` (an end-of-generation token) whatever the file says, and onto
  the FIM prefix/middle/suffix tokens when their ids are not in the metadata (it then finds them by text).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest

from cgstudio.testing.synthetic_gguf import (
    BOS_ID,
    CODEGEMMA_CHAT_TEMPLATE,
    EOS_ID,
    EOT_ID,
    FILE_SEPARATOR_ID,
    FIM_IDS,
    FIM_MIDDLE_ID,
    FIM_PREFIX_ID,
    FIM_SUFFIX_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    START_OF_TURN_ID,
    UNK_ID,
    SpecialTokenType,
    build_vocab,
    main,
    write_codegemma_gguf,
)

TYPINGS: tuple[SpecialTokenType, ...] = ("control", "user_defined")
MARKED_IDS = (*FIM_IDS, START_OF_TURN_ID, EOT_ID)  # the ids whose type depends on special_token_type
CONTROL = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
USER_DEFINED = llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED

ROUND_TRIP_TEXTS = (
    "def f():\n    return 1",
    "",
    " ",
    "  leading spaces",
    "class A:\n\tdef __init__(self):\n\t\tpass\n",
    "héllo wörld ✓ 日本語 🚀",
    "a\r\nb\x00c\x7f",
    "<|fim_prefix|> <start_of_turn>",  # special-token text is ordinary text when special=False ...
    "x <= y != z -> w // 2 ** 3",
)


def _load(path: Path, **kwargs: Any) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(path), n_ctx=256, n_threads=2, verbose=False, seed=0, **kwargs)


@pytest.fixture(scope="module", params=TYPINGS)
def typed_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """(special_token_type, path, Llama) for each typing, with the default FIM metadata keys."""
    typing = request.param
    path = write_codegemma_gguf(tmp_path_factory.mktemp(typing) / "m.gguf", special_token_type=typing)
    llm = _load(path)
    yield typing, path, llm
    llm.close()


def _field(reader: gguf.GGUFReader, key: str) -> Any:
    return reader.fields[key].contents()


# --- the file itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("typing", TYPINGS)
def test_metadata_tensors_and_token_types(tmp_path: Path, typing: SpecialTokenType) -> None:
    path = write_codegemma_gguf(tmp_path / "m.gguf", special_token_type=typing, name="codegemma-7b-it")
    reader = gguf.GGUFReader(path)

    assert _field(reader, "general.architecture") == "gemma"
    assert _field(reader, "general.name") == "codegemma-7b-it"
    assert _field(reader, "general.file_type") == gguf.LlamaFileType.ALL_F32
    expected = {
        "gemma.context_length": 8192,
        "gemma.embedding_length": 64,
        "gemma.block_count": 2,
        "gemma.feed_forward_length": 128,
        "gemma.attention.head_count": 4,
        "gemma.attention.head_count_kv": 1,
        "gemma.attention.key_length": 16,
        "gemma.attention.value_length": 16,
        "tokenizer.ggml.bos_token_id": BOS_ID,
        "tokenizer.ggml.eos_token_id": EOS_ID,
        "tokenizer.ggml.padding_token_id": PAD_ID,
        "tokenizer.ggml.unknown_token_id": UNK_ID,
        "tokenizer.ggml.eot_token_id": EOT_ID,
        "tokenizer.ggml.fim_pre_token_id": FIM_PREFIX_ID,
        "tokenizer.ggml.fim_mid_token_id": FIM_MIDDLE_ID,
        "tokenizer.ggml.fim_suf_token_id": FIM_SUFFIX_ID,
        "tokenizer.ggml.fim_sep_token_id": FILE_SEPARATOR_ID,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": False,
        "tokenizer.ggml.add_space_prefix": False,
        "tokenizer.ggml.model": "llama",
    }
    assert {key: _field(reader, key) for key in expected} == expected
    assert _field(reader, "gemma.attention.layer_norm_rms_epsilon") == pytest.approx(1e-6)
    assert "tokenizer.chat_template" not in reader.fields

    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    assert len(tokens) == len(types) == len(_field(reader, "tokenizer.ggml.scores"))
    for token_id, text in SPECIAL_TOKENS.items():
        assert tokens[token_id] == text
    assert types[PAD_ID] == types[EOS_ID] == types[BOS_ID] == gguf.TokenType.CONTROL
    assert types[UNK_ID] == gguf.TokenType.UNKNOWN
    marked = gguf.TokenType.CONTROL if typing == "control" else gguf.TokenType.USER_DEFINED
    assert [types[i] for i in MARKED_IDS] == [marked] * len(MARKED_IDS)
    assert tokens[7] == "<unused0>" and types[7] == gguf.TokenType.CONTROL
    assert [tokens.index(f"<0x{b:02X}>") for b in (0, 255)] == [
        tokens.index("<0x00>"),
        tokens.index("<0x00>") + 255,
    ]
    assert all(types[tokens.index(f"<0x{b:02X}>")] == gguf.TokenType.BYTE for b in range(256))
    for piece in ("<", ">", "|", "_", "\u2581", "\u2581\u2581\u2581\u2581", "\n", "def", "\u2581def"):
        assert types[tokens.index(piece)] == gguf.TokenType.NORMAL

    tensors = {t.name: t for t in reader.tensors}
    per_layer = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                 "ffn_down")  # fmt: skip
    assert set(tensors) == {"token_embd.weight", "output_norm.weight"} | {
        f"blk.{i}.{t}.weight" for i in range(2) for t in per_layer
    }
    assert "output.weight" not in tensors  # gemma ties the output to token_embd
    assert list(tensors["token_embd.weight"].shape) == [64, len(tokens)]  # ggml order: ne0 first
    assert list(tensors["blk.0.attn_k.weight"].shape) == [64, 16]
    assert list(tensors["blk.1.ffn_down.weight"].shape) == [128, 64]
    assert all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in tensors.values())


def test_deterministic_small_and_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    a = write_codegemma_gguf(tmp_path / "a.gguf", seed=7)
    elapsed = time.perf_counter() - start
    b = write_codegemma_gguf(tmp_path / "b.gguf", seed=7)
    c = write_codegemma_gguf(tmp_path / "c.gguf", seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert a.stat().st_size < 2 * 1024 * 1024
    assert elapsed < 5.0  # about 0.06 s cold; generous for slow CI machines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gguf", "b.gguf", "c.gguf"]  # no temp files left


def test_options_written(tmp_path: Path) -> None:
    path = write_codegemma_gguf(
        tmp_path / "sub" / "m.gguf",
        chat_template=CODEGEMMA_CHAT_TEMPLATE,
        add_space_prefix=True,
        include_fim=False,
        f16=True,
        n_head_kv=4,
        context_length=4096,
    )
    reader = gguf.GGUFReader(path)
    assert _field(reader, "tokenizer.chat_template") == CODEGEMMA_CHAT_TEMPLATE
    assert _field(reader, "tokenizer.ggml.add_space_prefix") is True
    assert _field(reader, "gemma.attention.head_count_kv") == 4
    assert _field(reader, "gemma.context_length") == 4096
    assert _field(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    assert not any(key.startswith("tokenizer.ggml.fim_") for key in reader.fields)
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert [tokens[i] for i in FIM_IDS] == ["<unused60>", "<unused61>", "<unused62>", "<unused63>"]
    assert not any("fim" in t or "file_separator" in t for t in tokens)
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["token_embd.weight"] == gguf.GGMLQuantizationType.F16
    assert types["output_norm.weight"] == gguf.GGMLQuantizationType.F32


def test_vocab_is_prefix_closed_and_unique() -> None:
    vocab = build_vocab()
    normal = {e.text for e in vocab if e.token_type == gguf.TokenType.NORMAL}
    assert all(piece[:-1] in normal for piece in normal if len(piece) > 1)
    assert len({e.text for e in vocab}) == len(vocab)
    assert all(len(e.text.encode()) <= 32 for e in vocab)  # llama-cpp-python's detokenize buffer


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_embd": 65},
        {"n_head_kv": 3},
        {"n_layers": 0},
        {"special_token_type": "special"},
        {"fim_id_keys": "x"},
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        write_codegemma_gguf(tmp_path / "m.gguf", **kwargs)
    assert not list(tmp_path.iterdir())


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.gguf"
    assert main([str(out), "--user-defined", "--chat-template"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    reader = gguf.GGUFReader(out)
    assert _field(reader, "tokenizer.ggml.token_type")[FIM_SUFFIX_ID] == gguf.TokenType.USER_DEFINED
    assert "tokenizer.chat_template" in reader.fields


# --- through llama.cpp -------------------------------------------------------------------------------


def test_loads_and_generates(typed_model: Any) -> None:
    _, _, llm = typed_model
    assert llm.metadata["general.architecture"] == "gemma"
    assert llm.n_ctx() == 256
    out = llm("def add(a, b):\n", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1
    assert isinstance(out["choices"][0]["text"], str)


def test_special_token_ids(typed_model: Any) -> None:
    _, _, llm = typed_model
    model = llm._model
    for token_id, text in SPECIAL_TOKENS.items():
        assert model.token_get_text(token_id) == text
        assert llm.detokenize([token_id], special=True) == text.encode()
    assert (model.token_bos(), model.token_eos(), model.token_eot()) == (BOS_ID, EOS_ID, EOT_ID)
    assert (model.token_prefix(), model.token_middle(), model.token_suffix()) == (
        FIM_PREFIX_ID,
        FIM_MIDDLE_ID,
        FIM_SUFFIX_ID,
    )
    assert model.add_bos_token() is True and model.add_eos_token() is False
    assert llm.tokenize(b"x", add_bos=True, special=False)[0] == BOS_ID
    eog = [i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(model.vocab, i)]
    assert eog == [EOS_ID, FILE_SEPARATOR_ID, EOT_ID]  # fim_sep from the metadata is end-of-generation


def test_token_attributes(typed_model: Any) -> None:
    typing, _, llm = typed_model
    attr = llm._model.token_get_attr
    assert attr(BOS_ID) == attr(EOS_ID) == attr(PAD_ID) == CONTROL
    assert attr(UNK_ID) == llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    assert attr(7) == CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNUSED  # llama.cpp flags "<unusedN>" controls
    if typing == "control":
        assert [attr(i) for i in MARKED_IDS] == [CONTROL] * len(MARKED_IDS)
    else:
        assert [attr(i) for i in (*FIM_IDS, START_OF_TURN_ID)] == [USER_DEFINED] * 5
        assert attr(EOT_ID) == CONTROL | USER_DEFINED  # llama.cpp forces CONTROL onto EOG tokens


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_round_trip(typed_model: Any, text: str) -> None:
    _, _, llm = typed_model
    data = text.encode()
    tokens = llm.tokenize(data, add_bos=False, special=False)
    assert llm.detokenize(tokens) == data
    with_bos = llm.tokenize(data, add_bos=True, special=False)
    assert with_bos == [BOS_ID, *tokens]


def test_detokenize_after_bos_drops_one_leading_space(typed_model: Any) -> None:
    """llama-cpp-python's detokenize removes a leading space when the first token is BOS (a Llama-1 hack)."""
    _, _, llm = typed_model
    tokens = llm.tokenize(b"  x", add_bos=True, special=False)
    assert llm.detokenize(tokens) == b" x"
    assert llm.detokenize(tokens[1:]) == b"  x"


def test_code_tokenizes_into_pieces(typed_model: Any) -> None:
    _, _, llm = typed_model
    tokens = llm.tokenize(b"def f():\n    return 1", add_bos=False, special=False)
    pieces = [llm._model.token_get_text(t) for t in tokens]
    assert pieces == ["def", "\u2581f", "():", "\n\u2581\u2581\u2581\u2581", "return", "\u2581", "1"]


def test_special_text_with_special_false(typed_model: Any) -> None:
    """USER_DEFINED specials are matched in plain text; CONTROL ones stay text (byte/char pieces)."""
    typing, _, llm = typed_model
    for token_id in (*FIM_IDS, START_OF_TURN_ID):
        text = SPECIAL_TOKENS[token_id].encode()
        tokens = llm.tokenize(text, add_bos=False, special=False)
        if typing == "user_defined":
            assert tokens == [token_id]
            assert llm.detokenize(tokens) == text  # USER_DEFINED pieces render even with special=False
        else:
            assert token_id not in tokens and len(tokens) > 1
            assert llm.detokenize(tokens) == text
    # <end_of_turn> is CONTROL in llama.cpp in both typings, so plain text never yields it.
    eot_tokens = llm.tokenize(b"<end_of_turn>", add_bos=False, special=False)
    assert EOT_ID not in eot_tokens and len(eot_tokens) > 1
    assert llm.detokenize([EOT_ID]) == b""


def test_special_text_with_special_true(typed_model: Any) -> None:
    _, _, llm = typed_model
    for token_id, text in SPECIAL_TOKENS.items():
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == [token_id]
    prompt = b"<|fim_prefix|>def f<|fim_suffix|>\n<|fim_middle|>"
    tokens = llm.tokenize(prompt, add_bos=True, special=True)
    assert tokens[:2] == [BOS_ID, FIM_PREFIX_ID] and tokens[-1] == FIM_MIDDLE_ID
    assert FIM_SUFFIX_ID in tokens
    assert llm.detokenize(tokens[1:], special=True) == prompt


@pytest.mark.parametrize("typing", TYPINGS)
def test_without_fim_id_keys_llama_cpp_finds_fim_by_text(tmp_path: Path, typing: SpecialTokenType) -> None:
    """With no FIM id keys (as current convert_hf_to_gguf writes Gemma), llama.cpp detects prefix/middle/
    suffix by their text and makes them CONTROL; `<|file_separator|>` it does not know (and is not EOG)."""
    llm = _load(write_codegemma_gguf(tmp_path / "m.gguf", special_token_type=typing, fim_id_keys="none"))
    try:
        model = llm._model
        assert (model.token_prefix(), model.token_middle(), model.token_suffix()) == (
            FIM_PREFIX_ID,
            FIM_MIDDLE_ID,
            FIM_SUFFIX_ID,
        )
        for token_id in (FIM_PREFIX_ID, FIM_MIDDLE_ID, FIM_SUFFIX_ID):
            assert model.token_get_attr(token_id) & CONTROL
            assert token_id not in llm.tokenize(
                SPECIAL_TOKENS[token_id].encode(), add_bos=False, special=False
            )
        sep_plain = llm.tokenize(b"<|file_separator|>", add_bos=False, special=False)
        assert (sep_plain == [FILE_SEPARATOR_ID]) is (typing == "user_defined")
        assert not llama_cpp.llama_vocab_is_eog(model.vocab, FILE_SEPARATOR_ID)
    finally:
        llm.close()


def test_legacy_fim_id_keys(tmp_path: Path) -> None:
    path = write_codegemma_gguf(tmp_path / "m.gguf", special_token_type="user_defined", fim_id_keys="legacy")
    reader = gguf.GGUFReader(path)
    assert _field(reader, "tokenizer.ggml.prefix_token_id") == FIM_PREFIX_ID
    assert _field(reader, "tokenizer.ggml.suffix_token_id") == FIM_SUFFIX_ID
    assert _field(reader, "tokenizer.ggml.middle_token_id") == FIM_MIDDLE_ID
    llm = _load(path)
    try:
        assert llm._model.token_suffix() == FIM_SUFFIX_ID
        assert llm.tokenize(b"<|fim_suffix|>", add_bos=False, special=False) == [FIM_SUFFIX_ID]
    finally:
        llm.close()


def test_without_fim_tokens(tmp_path: Path) -> None:
    llm = _load(write_codegemma_gguf(tmp_path / "m.gguf", include_fim=False))
    try:
        model = llm._model
        assert (model.token_prefix(), model.token_middle(), model.token_suffix()) == (-1, -1, -1)
        assert [model.token_get_text(i) for i in FIM_IDS] == [f"<unused{i - 7}>" for i in FIM_IDS]
        tokens = llm.tokenize(b"<|fim_prefix|>", add_bos=False, special=True)
        assert not set(tokens) & set(FIM_IDS) and len(tokens) > 1
        assert model.token_eot() == EOT_ID
    finally:
        llm.close()


def test_f16_gqa_chat_template_model_runs(tmp_path: Path) -> None:
    path = write_codegemma_gguf(
        tmp_path / "m.gguf", f16=True, n_head_kv=4, n_layers=1, chat_template=CODEGEMMA_CHAT_TEMPLATE
    )
    llm = _load(path, logits_all=True)
    try:
        assert llm.metadata["tokenizer.chat_template"] == CODEGEMMA_CHAT_TEMPLATE
        result = llm.create_chat_completion(messages=[{"role": "user", "content": "hi"}], max_tokens=4)
        assert isinstance(result, dict)
        assert result["choices"][0]["message"]["role"] == "assistant"
        llm.reset()
        llm.eval(llm.tokenize(b"def f():", add_bos=True, special=False))
        last_logits = np.asarray(llm.scores[llm.n_tokens - 1])
        assert np.isfinite(last_logits).all() and last_logits.any()
    finally:
        llm.close()
