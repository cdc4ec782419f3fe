"""The llama.cpp embedding engine on tiny synthetic BERT GGUFs: what it accepts, refuses and returns."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cgstudio.core.errors import InvalidInputError, ModelFormatError, SettingsError
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp.embedding import MAX_SEQUENCES, LlamaCppEmbedder, inspect_embedding_model
from cgstudio.server.config import ModelSpec, resolve_embedding_model, server_settings
from cgstudio.testing.synthetic_embedding import CLS_ID, SEP_ID, write_bert_embedding_gguf

N_CTX = 64


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embed-engine")


@pytest.fixture(scope="module")
def embedder(gguf_dir: Path) -> Iterator[LlamaCppEmbedder]:
    path = write_bert_embedding_gguf(gguf_dir / "mean.gguf", context_length=N_CTX)
    e = LlamaCppEmbedder(path, LoadProfile(n_threads=2))
    yield e
    e.close()


def test_pooling_from_the_header(gguf_dir: Path) -> None:
    def pooling(kind: str | None) -> str:
        name = f"pool-{kind}.gguf"
        return inspect_embedding_model(write_bert_embedding_gguf(gguf_dir / name, pooling=kind)).pooling  # type: ignore[arg-type]

    assert pooling("mean") == "mean"
    assert pooling("cls") == "cls"
    assert pooling(None) == "mean"  # a BERT file without the key: mean, as sentence-transformers
    assert pooling("none") == "mean"  # one vector per input, never one per token


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"pooling": "rank"}, "reranker"),
        ({"hparam_overrides": {"pooling_type": 9}}, "pooling_type is 9"),
        ({"hparam_overrides": {"attention.key_length": 4}}, "key_length"),  # the BERT graph asserts
    ],
)
def test_refused_before_llama_cpp(gguf_dir: Path, kwargs: dict[str, object], words: str) -> None:
    path = write_bert_embedding_gguf(gguf_dir / "bad.gguf", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ModelFormatError, match=words):
        LlamaCppEmbedder(path, LoadProfile())


def test_a_code_model_is_not_an_embedding_model(codegemma_paths: dict[str, Path]) -> None:
    with pytest.raises(ModelFormatError, match="not an embedding model"):
        inspect_embedding_model(codegemma_paths["control"])


def test_raw_vectors_are_pooled_not_normalised(embedder: LlamaCppEmbedder) -> None:
    out = embedder.embed(["def add", "return value"], truncate=False)
    assert [v.shape for v in out.vectors] == [(32,), (32,)]
    # The server normalises: a test that it does is only worth something if the engine does not.
    assert all(abs(float(np.linalg.norm(v)) - 1.0) > 0.01 for v in out.vectors)
    assert out.token_counts == [4, 4]  # [CLS] ▁def ▁add [SEP], [CLS] ▁return ▁value [SEP]


def test_truncation_keeps_cls_and_sep(embedder: LlamaCppEmbedder) -> None:
    tokens, cut = embedder.tokens_for("word " * 200, truncate=True)
    assert cut and len(tokens) == N_CTX and tokens[0] == CLS_ID and tokens[-1] == SEP_ID
    with pytest.raises(InvalidInputError, match="at most 64"):
        embedder.tokens_for("word " * 200, truncate=False)
    with pytest.raises(InvalidInputError, match="token id"):
        embedder.check_tokens([CLS_ID, embedder.n_vocab, SEP_ID], truncate=False)


def test_packing_keeps_order(embedder: LlamaCppEmbedder) -> None:
    # More inputs than one batch holds (sequences and tokens): every vector is its text's own.
    texts = [f"value {'x ' * (i % 7)}{i}" for i in range(MAX_SEQUENCES + 9)] + ["data " * 40] * 3
    together = embedder.embed(texts, truncate=False).vectors
    for text, vector in zip(texts, together, strict=True):
        alone = embedder.embed([text], truncate=False).vectors[0]
        assert np.allclose(alone, vector, atol=1e-5)
    assert not np.allclose(together[0], together[1], atol=1e-3)


def test_embedding_model_flag_settings(tmp_path: Path) -> None:
    assert resolve_embedding_model("~/m/nomic-embed-text.gguf").alias == "nomic-embed-text"
    spec = resolve_embedding_model("embed=/models/x.gguf")
    assert (spec.alias, spec.path) == ("embed", Path("/models/x.gguf"))
    with pytest.raises(SettingsError, match="--embedding-model ALIAS=PATH"):
        server_settings(
            models=[ModelSpec(alias="same", path=tmp_path / "a.gguf")],
            embedding_model=ModelSpec(alias="same", path=tmp_path / "b.gguf"),
        )
