"""Hostile or damaged GGUF metadata is refused before llama.cpp sees it (issue 12, items 2 and 3).

llama.cpp GGML_ASSERTs on a layer count above LLAMA_MAX_LAYERS, and only when the weights load, so
``inspect`` used to pass such a file and ``complete``/``serve`` died with SIGABRT (exit 134). The
commands run in subprocesses: an abort fails the test instead of killing the test run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cgstudio.core.errors import ModelFormatError
from cgstudio.engine.llamacpp.gguf_check import (
    LLAMA_MAX_LAYERS,
    ArrayInfo,
    GGUFHeader,
    check_hparams,
    read_header,
    validate_model_file,
)
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

SIGABRT_RCS = (134, -6)

HOSTILE: dict[str, tuple[dict[str, int | str], str]] = {
    "layers_2e31": ({"block_count": 2**31}, "block_count is 2147483648"),
    "layers_513": ({"block_count": LLAMA_MAX_LAYERS + 1}, "1 to 512 layers"),
    "layers_0": ({"block_count": 0}, "block_count is 0"),
    "heads_0": ({"attention.head_count": 0}, "head_count is 0"),
    "kv_heads_0": ({"attention.head_count_kv": 0}, "head_count_kv (0)"),
    "kv_heads_not_dividing": ({"attention.head_count_kv": 3}, "divide head_count (4)"),
    "embd_mismatch": ({"embedding_length": 32}, "token_embd.weight is 64 wide"),
    "ctx_0": ({"context_length": 0}, "context_length is 0"),
    "rope_scaling": ({"rope.scaling.type": "bogus"}, "rope.scaling.type is 'bogus'"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    return {
        key: write_codegemma_gguf(d / f"codegemma-2b-{key}.gguf", hparam_overrides=over)
        for key, (over, _) in HOSTILE.items()
    }


def cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_validation_names_the_bad_value(hostile: dict[str, Path], key: str) -> None:
    with pytest.raises(ModelFormatError, match=re.escape(HOSTILE[key][1])):
        validate_model_file(hostile[key])


def test_a_good_file_passes_and_its_header_is_read(codegemma_paths: dict[str, Path]) -> None:
    h = validate_model_file(codegemma_paths["control"])
    assert h.architecture == "gemma" and h.version == 3
    assert h.kv["gemma.block_count"] == 2 and h.kv["gemma.embedding_length"] == 64
    assert h.tensors["token_embd.weight"] == (64, h.n_vocab)


def test_block_count_2e31_fails_inspect_and_complete_cleanly(hostile: dict[str, Path]) -> None:
    path = str(hostile["layers_2e31"])
    r = cli("inspect", path, "--json")
    assert r.returncode == 1, r.stdout  # was 0: inspect reads the vocabulary only
    assert "block_count is 2147483648" in r.stderr and "Traceback" not in r.stderr
    r = cli("complete", "-m", path, "--prefix", "def f(", "-n", "2")
    assert r.returncode not in SIGABRT_RCS, r.stderr[-2000:]  # was 134: GGML_ASSERT(n_layer <= 512)
    assert r.returncode == 1 and "block_count" in r.stderr


@pytest.mark.parametrize("key", ["heads_0", "embd_mismatch", "layers_2e31", "kv_heads_not_dividing"])
def test_doctor_fails_files_that_cannot_load(hostile: dict[str, Path], key: str) -> None:
    r = cli("doctor", "--model", str(hostile[key]), "--json")
    assert r.returncode not in SIGABRT_RCS, r.stderr[-2000:]
    assert r.returncode == 1, r.stdout[-2000:]  # was 0 for heads_0 and embd_mismatch
    checks = json.loads(r.stdout)["checks"]
    failed = [c for c in checks if c["status"] == "fail" and c["name"] == "gguf.architecture"]
    assert failed and HOSTILE[key][1] in failed[0]["detail"]


def test_vocabulary_size_must_match_the_embedding_rows(tmp_path: Path) -> None:
    h = GGUFHeader(path=tmp_path / "x.gguf", version=3, size=1)
    h.kv = {
        "general.architecture": "gemma",
        "gemma.block_count": 2,
        "gemma.context_length": 8192,
        "gemma.embedding_length": 64,
        "gemma.attention.head_count": 4,
        "gemma.attention.head_count_kv": 1,
        "tokenizer.ggml.tokens": ArrayInfo(8, 1000),
    }
    h.tensors = {"token_embd.weight": (64, 1000)}
    check_hparams(h, require=True)
    h.tensors = {"token_embd.weight": (64, 999)}
    with pytest.raises(ModelFormatError, match=r"1000 tokens but token_embd\.weight has 999 rows"):
        check_hparams(h, require=True)


def test_per_layer_head_arrays_of_hybrid_models_are_accepted(tmp_path: Path) -> None:
    h = GGUFHeader(path=tmp_path / "x.gguf", version=3, size=1)
    h.kv = {
        "general.architecture": "lfm2",
        "lfm2.block_count": 4,
        "lfm2.context_length": 4096,
        "lfm2.embedding_length": 64,
        "lfm2.attention.head_count": 4,
        "lfm2.attention.head_count_kv": ArrayInfo(4, 4, (0, 2, 0, 2)),
    }
    h.tensors = {"token_embd.weight": (64, 100)}
    check_hparams(h, require=True)
    h.kv["lfm2.attention.head_count_kv"] = ArrayInfo(4, 3, (0, 2, 0))
    with pytest.raises(ModelFormatError, match="3 entries for 4 layers"):
        check_hparams(h, require=True)


def test_lying_counts_and_truncation_are_refused_quickly(
    codegemma_paths: dict[str, Path], tmp_path: Path
) -> None:
    good = codegemma_paths["control"].read_bytes()
    liar = tmp_path / "liar.gguf"
    liar.write_bytes(good[:8] + (2**63).to_bytes(8, "little") + good[16:])
    with pytest.raises(ModelFormatError, match="more than the file holds"):
        read_header(liar)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good[:4000])
    with pytest.raises(ModelFormatError, match="truncated or damaged"):
        read_header(cut)
    v1 = tmp_path / "v1.gguf"
    v1.write_bytes(b"GGUF" + (1).to_bytes(4, "little") + good[8:])
    with pytest.raises(ModelFormatError, match="version 1"):
        read_header(v1)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_as_model_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    for args in (
        ("inspect", str(fifo)),
        ("complete", "-m", str(fifo), "--prefix", "x"),
        ("doctor", "--model", str(fifo)),
        ("models", "add", str(fifo)),
    ):
        r = cli(*args, timeout=60)  # hung forever before: open() of a FIFO waits for a writer
        assert r.returncode == 1, (args, r.stderr)
        assert "FIFO" in (r.stderr + r.stdout) and "Traceback" not in r.stderr, (args, r.stderr)
