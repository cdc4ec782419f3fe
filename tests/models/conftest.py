"""Isolation for the store, the Hub and the profile: nothing here touches the real data dir or Hub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehub import FakeHub, FakeRepo

from cgstudio.core.engine import ModelInfo
from cgstudio.store import hub as hub_mod
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

_HUB_ENV = (
    "HF_TOKEN",
    "HF_HUB_OFFLINE",
    "HF_ENDPOINT",
    "HUGGING_FACE_HUB_TOKEN",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def isolated_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = tmp_path / "cgstudio-home"
    monkeypatch.setenv("CGSTUDIO_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no real token file is ever read
    for key in _HUB_ENV:
        monkeypatch.delenv(key, raising=False)
    # anything that slips past HF_ENDPOINT would go to a closed port, never to the real Hub
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(hub_mod, "CHUNK", 16 * 1024)  # several progress steps for small test files
    return home


@pytest.fixture(scope="session")
def gguf_bytes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("hubfiles")
    return {
        "q4": write_codegemma_gguf(d / "a.gguf", name="codegemma-2b", seed=1).read_bytes(),
        "q8": write_codegemma_gguf(d / "b.gguf", name="codegemma-2b", seed=2, f16=True).read_bytes(),
        "f16": write_codegemma_gguf(d / "c.gguf", name="codegemma-2b", seed=3, f16=True).read_bytes(),
    }


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, gguf_bytes: dict[str, bytes]) -> Iterator[FakeHub]:
    hub = FakeHub()
    hub.repos["bartowski/codegemma-2b-GGUF"] = FakeRepo(
        {
            "README.md": b"# codegemma-2b GGUF\n",
            "codegemma-2b-Q4_K_M.gguf": gguf_bytes["q4"],
            "codegemma-2b-Q8_0.gguf": gguf_bytes["q8"],
        }
    )
    hub.repos["google/codegemma-2b-GGUF"] = FakeRepo(
        {"codegemma-2b-f16.gguf": gguf_bytes["f16"], "README.md": b"gated\n"},
        commit="9" * 40,
        gated=True,
        accepted_tokens={"hf_accepted"},
    )
    with hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        yield hub


def _info(name: str, *, layers: int, heads: int, kv_heads: int, size: int, chat: bool = False) -> ModelInfo:
    fim = {"<|fim_prefix|>": 67, "<|fim_middle|>": 68, "<|fim_suffix|>": 69, "<|file_separator|>": 70}
    return ModelInfo(
        path=f"/models/{name}-Q4_K_M.gguf",
        architecture="gemma",
        name=name,
        n_ctx_train=8192,
        n_layers=layers,
        n_head=heads,
        n_head_kv=kv_heads,
        key_length=256,
        value_length=256,
        size_bytes=size,
        n_params=0,
        quantization="Q4_K_M",
        chat_template="{{ bos_token }}" if chat else None,
        bos_id=2,
        eos_id=1,
        eot_id=107,
        add_bos=True,
        add_space_prefix=False,
        n_vocab=256000,
        special_tokens={"<bos>": 2, "<eos>": 1, "<start_of_turn>": 106, "<end_of_turn>": 107, **fim},
        metadata={"gemma.context_length": "8192", "general.name": name},
    )


@pytest.fixture
def codegemma7b_info() -> ModelInfo:
    """The shape of codegemma-7b (full multi-head attention: 16 KV heads of 256) at Q4_K_M."""
    return _info("codegemma-7b", layers=28, heads=16, kv_heads=16, size=int(5.33e9))


@pytest.fixture
def codegemma7b_it_info() -> ModelInfo:
    return _info("codegemma-7b-it", layers=28, heads=16, kv_heads=16, size=int(5.33e9), chat=True)


@pytest.fixture
def codegemma2b_info() -> ModelInfo:
    """codegemma-2b: multi-query attention (1 KV head), 18 layers."""
    return _info("codegemma-2b", layers=18, heads=8, kv_heads=1, size=int(1.63e9))
