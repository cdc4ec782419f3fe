"""Embeddings over real clients: openai's embeddings.create, ollama's embed and embeddings.

The embedding model is a tiny random-weight BERT GGUF (cgstudio.testing.synthetic_embedding) that
llama.cpp loads and mean-pools for real: 32 dimensions, a 128-token context, a WordPiece vocabulary.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import ollama
import openai
import pytest
from server_testing import API_KEY, Live, LiveFactory

from cgstudio.server.config import ModelSpec
from cgstudio.testing.synthetic_embedding import CLS_ID, SEP_ID, write_bert_embedding_gguf

N_EMBD = 32
N_CTX = 128
AUTH = {"Authorization": f"Bearer {API_KEY}"}
TEXTS = ["def add(a, b): return a + b", "class list sorted", "print('hello world')"]
LONG = "value " * 300  # 300 words: far beyond the 128-token context


@pytest.fixture(scope="module")
def bert_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bert_embedding_gguf(
        tmp_path_factory.mktemp("embed") / "tiny-embed.gguf", n_embd=N_EMBD, context_length=N_CTX
    )


@pytest.fixture(scope="module")
def live(live_server: LiveFactory, codegemma_paths: dict[str, Path], bert_path: Path) -> Iterator[Live]:
    embedding = ModelSpec(alias="tiny-embed", path=bert_path)
    with live_server(
        {"cg-pt": codegemma_paths["control"]}, api_key=API_KEY, embedding_model=embedding
    ) as server:
        yield server


@pytest.fixture(scope="module")
def plain(live_server: LiveFactory, codegemma_paths: dict[str, Path]) -> Iterator[Live]:
    """A server without --embedding-model."""
    with live_server({"cg-pt": codegemma_paths["control"]}) as server:
        yield server


@pytest.fixture
def oai(live: Live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture
def oll(live: Live) -> ollama.Client:
    return ollama.Client(host=live.url, headers=AUTH)


def unit(vector: list[float] | np.ndarray) -> bool:
    return abs(float(np.linalg.norm(np.asarray(vector, dtype=np.float64))) - 1.0) < 1e-5


def close(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> bool:
    # Inputs batched with different neighbours round differently in the last float32 bits.
    return bool(np.allclose(a, b, atol=1e-5))


# -- OpenAI ------------------------------------------------------------------------------------------
def test_openai_client_batch(oai: openai.OpenAI) -> None:
    r = oai.embeddings.create(model="tiny-embed", input=[*TEXTS, TEXTS[0]])
    assert r.object == "list" and r.model == "tiny-embed"
    assert [d.index for d in r.data] == [0, 1, 2, 3]
    vectors = [d.embedding for d in r.data]
    assert all(len(v) == N_EMBD and unit(v) for v in vectors)
    assert close(vectors[0], vectors[3])  # the same text: the same vector (to float32 rounding)
    assert not close(vectors[0], vectors[1]) and not close(vectors[1], vectors[2])
    assert r.usage.prompt_tokens == r.usage.total_tokens > len(TEXTS) * 2  # [CLS] text [SEP] each
    # The batch keeps its order: each vector is the one that text gets alone.
    for text, vector in zip(TEXTS, vectors, strict=False):
        alone = oai.embeddings.create(model="tiny-embed", input=text).data[0].embedding
        assert close(alone, vector)


def test_openai_float_and_base64_agree(oai: openai.OpenAI, live: Live) -> None:
    # The openai client asks for base64 unless told otherwise, and decodes it itself.
    decoded = oai.embeddings.create(model="default", input=TEXTS[1]).data[0].embedding
    floats = oai.embeddings.create(model="default", input=TEXTS[1], encoding_format="float")
    assert close(decoded, floats.data[0].embedding)
    raw = httpx.post(
        live.url + "/v1/embeddings",
        json={"input": TEXTS[1], "encoding_format": "base64"},
        headers=AUTH,
    ).json()
    vector = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), dtype="<f4")
    assert vector.shape == (N_EMBD,) and close(vector, decoded)


def test_openai_token_inputs_and_dimensions(oai: openai.OpenAI, live: Live) -> None:
    tokens = live.app.state.embeddings._embedder.tokens_for(TEXTS[0], truncate=False)[0]
    assert tokens[0] == CLS_ID and tokens[-1] == SEP_ID
    by_text = oai.embeddings.create(model="tiny-embed", input=TEXTS[0]).data[0].embedding
    one = oai.embeddings.create(model="tiny-embed", input=tokens).data
    two = oai.embeddings.create(model="tiny-embed", input=[tokens, tokens[:3]]).data
    assert len(one) == 1 and close(one[0].embedding, by_text)
    assert len(two) == 2 and close(two[0].embedding, by_text) and not close(two[1].embedding, by_text)
    short = oai.embeddings.create(model="tiny-embed", input=TEXTS[0], dimensions=8).data[0].embedding
    assert len(short) == 8 and unit(short)
    assert close(short, np.asarray(by_text[:8]) / np.linalg.norm(by_text[:8]))


def test_openai_too_long_is_400_unless_truncated(oai: openai.OpenAI, live: Live) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        oai.embeddings.create(model="tiny-embed", input=LONG)
    assert "128" in str(exc.value) and "truncate" in str(exc.value)
    r = httpx.post(live.url + "/v1/embeddings", json={"input": LONG, "truncate": True}, headers=AUTH)
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == N_CTX


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"input": []}, "empty"),
        ({"input": ""}, "empty string"),
        ({"input": ["ok", ""]}, "input 1"),
        ({"input": [[]]}, "empty list of tokens"),
        ({"input": [1, 10**6]}, "token id 1000000"),
        ({"input": ["a\x00b"]}, "NUL"),
        ({"input": ["x"] * 2049}, "2,048"),
        ({"input": "x", "dimensions": N_EMBD + 1}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": ["x", 1]}, "input"),
    ],
)
def test_openai_bad_input_is_400(live: Live, body: dict[str, object], words: str) -> None:
    r = httpx.post(live.url + "/v1/embeddings", json={"model": "tiny-embed", **body}, headers=AUTH)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]["message"]


def test_model_names(live: Live) -> None:
    def post(model: str) -> httpx.Response:
        return httpx.post(live.url + "/v1/embeddings", json={"model": model, "input": "x"}, headers=AUTH)

    for name in ("tiny-embed", "tiny-embed:latest", "tiny-embed.gguf", "default"):
        assert post(name).status_code == 200, name
    code_model = post("cg-pt")
    assert code_model.status_code == 400 and "not embeddings" in code_model.json()["error"]["message"]
    unknown = post("nomic-embed-text")
    assert unknown.status_code == 404 and "tiny-embed" in unknown.json()["error"]["message"]


# -- Ollama ------------------------------------------------------------------------------------------
def test_ollama_embed(oll: ollama.Client, oai: openai.OpenAI) -> None:
    r = oll.embed(model="tiny-embed", input=TEXTS)
    assert r.model == "tiny-embed" and len(r.embeddings) == len(TEXTS)
    assert all(len(v) == N_EMBD and unit(v) for v in r.embeddings)
    assert r.prompt_eval_count and r.prompt_eval_count > len(TEXTS) * 2
    assert r.total_duration and r.total_duration > 0
    openai_vectors = [d.embedding for d in oai.embeddings.create(model="tiny-embed", input=TEXTS).data]
    assert all(close(a, b) for a, b in zip(r.embeddings, openai_vectors, strict=True))
    again = oll.embed(model="tiny-embed:latest", input=TEXTS[2]).embeddings
    assert len(again) == 1 and close(again[0], r.embeddings[2])
    assert not close(r.embeddings[0], r.embeddings[1])
    short = oll.embed(model="tiny-embed", input=TEXTS[0], dimensions=4).embeddings[0]
    assert len(short) == 4 and unit(short)


def test_ollama_truncate(oll: ollama.Client) -> None:
    r = oll.embed(model="tiny-embed", input=[LONG, "x"])  # truncate defaults to true, as in Ollama
    assert len(r.embeddings) == 2 and r.prompt_eval_count == N_CTX + 3
    with pytest.raises(ollama.ResponseError) as exc:
        oll.embed(model="tiny-embed", input=LONG, truncate=False)
    assert exc.value.status_code == 400 and "truncate" in str(exc.value.error)


def test_ollama_empty_input_loads(oll: ollama.Client) -> None:
    r = oll.embed(model="tiny-embed", input=[])
    assert r.model == "tiny-embed" and r.embeddings == []
    assert oll.embeddings(model="tiny-embed", prompt="").embedding == []


def test_ollama_embeddings_legacy(oll: ollama.Client) -> None:
    vector = oll.embeddings(model="tiny-embed", prompt=TEXTS[0]).embedding
    assert len(vector) == N_EMBD and unit(vector)
    assert close(vector, oll.embed(model="tiny-embed", input=TEXTS[0]).embeddings[0])


# -- without --embedding-model ---------------------------------------------------------------------
def test_without_embedding_model_400_names_the_flag(plain: Live) -> None:
    with pytest.raises(openai.BadRequestError) as oe:
        openai.OpenAI(base_url=plain.url + "/v1", api_key="x", max_retries=0).embeddings.create(
            model="cg-pt", input="def f(): pass"
        )
    assert "--embedding-model" in str(oe.value)
    client = ollama.Client(host=plain.url)
    for call in (
        lambda: client.embed(model="cg-pt", input="x"),
        lambda: client.embed(model="cg-pt", input=""),
        lambda: client.embeddings(model="cg-pt", prompt="x"),
    ):
        with pytest.raises(ollama.ResponseError) as exc:
            call()
        assert exc.value.status_code == 400
        assert "--embedding-model" in str(exc.value.error)
        assert "not embeddings" in str(exc.value.error)
    assert plain.app.state.registry.entries["cg-pt"].model is None  # the code model never loaded
