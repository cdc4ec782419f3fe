"""The local model store: add/list/rm round trip, aliases in --model, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cgstudio.cli.main import main
from cgstudio.core.errors import ModelError, ModelNotFoundError, UsageError
from cgstudio.store.demo import DEMO_MODELS
from cgstudio.store.resolve import resolve
from cgstudio.store.store import ModelStore, data_dir, store_dir


def test_store_lives_under_cgstudio_home_or_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert store_dir() == Path(str(data_dir())) / "models"
    monkeypatch.delenv("CGSTUDIO_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert store_dir() == tmp_path / "xdg" / "cgstudio" / "models"


def test_round_trip_in_place(
    codegemma_paths: dict[str, Path], isolated_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = codegemma_paths["control"]
    assert main(["models", "add", str(src), "--alias", "CG2"]) == 0
    assert "cg2: codegemma pretrained" in capsys.readouterr().out

    assert main(["models", "list", "--json"]) == 0
    listed = [m for m in json.loads(capsys.readouterr().out) if not m["demo"]]
    assert len(listed) == 1
    m = listed[0]
    assert (m["alias"], m["family"], m["variant"], m["quantization"]) == (
        "cg2",
        "codegemma",
        "pretrained",
        "F32",
    )
    assert m["size_bytes"] == src.stat().st_size and m["path"] == str(src.resolve()) and m["exists"] is True
    assert m["managed"] is False and m["fim"] is True

    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split() == ["ALIAS", "FAMILY", "VARIANT", "QUANT", "SIZE", "PATH"]
    assert "cg2" in table and str(src.resolve()) in table

    # an alias is a --model anywhere: resolve(), and a real command
    assert resolve("cg2").path == src.resolve()
    assert main(["inspect", "cg2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["family"] == "codegemma"

    assert main(["models", "rm", "cg2"]) == 0
    assert "kept" in capsys.readouterr().out
    assert src.exists() and ModelStore().list() == []  # never deletes a file it does not own


def test_copy_puts_the_file_in_the_store_and_rm_deletes_it(
    codegemma_paths: dict[str, Path], isolated_store: Path
) -> None:
    store = ModelStore()
    entry = store.add(codegemma_paths["it"], copy=True)
    assert entry.alias == "codegemma-7b-it" and entry.variant == "instruction-tuned" and entry.managed
    copied = Path(entry.path)
    assert (
        copied.parent == isolated_store / "models" / "local"
        and copied.read_bytes() == codegemma_paths["it"].read_bytes()
    )
    _, deleted = store.remove("codegemma-7b-it")
    assert deleted and not copied.exists() and codegemma_paths["it"].exists()


def test_alias_errors(codegemma_paths: dict[str, Path]) -> None:
    store = ModelStore()
    store.add(codegemma_paths["control"], alias="cg")
    with pytest.raises(UsageError, match="already names"):
        store.add(codegemma_paths["user_defined"], alias="cg")
    with pytest.raises(UsageError, match="demo model"):
        store.add(codegemma_paths["user_defined"], alias="gemma3-270m")
    with pytest.raises(UsageError, match="invalid alias"):
        store.add(codegemma_paths["user_defined"], alias="a/b")
    with pytest.raises(ModelNotFoundError, match="no model 'nope'"):
        store.remove("nope")


def test_not_a_gguf_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("hello")
    with pytest.raises(ModelError, match="not a GGUF"):
        ModelStore().add(bad)
    assert ModelStore().list() == []


def test_untagged_alias_finds_the_only_tagged_one(codegemma_paths: dict[str, Path]) -> None:
    store = ModelStore()
    store.add(codegemma_paths["control"], alias="codegemma-2b:q4_k_m")
    assert resolve("codegemma-2b").alias == "codegemma-2b:q4_k_m"
    store.add(codegemma_paths["user_defined"], alias="codegemma-2b:q8_0")
    with pytest.raises(ModelNotFoundError, match="in the store: codegemma-2b:q4_k_m, codegemma-2b:q8_0"):
        resolve("codegemma-2b")  # ambiguous: the user must say which


def test_missing_file_and_damaged_registry_are_clear(
    codegemma_paths: dict[str, Path], tmp_path: Path, isolated_store: Path
) -> None:
    moved = tmp_path / "moved.gguf"
    moved.write_bytes(codegemma_paths["control"].read_bytes())
    ModelStore().add(moved, alias="moved")
    moved.unlink()
    with pytest.raises(ModelNotFoundError, match="no longer exists; `cgstudio models rm moved`"):
        resolve("moved")
    (isolated_store / "models" / "registry.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"registry .* is damaged"):
        ModelStore().list()


def test_files_and_paths_still_resolve_as_before(codegemma_paths: dict[str, Path]) -> None:
    p = codegemma_paths["control"]
    assert resolve(str(p)).path == p
    with pytest.raises(ModelNotFoundError, match="neither a file nor a known alias"):
        resolve("no-such-model")


def test_list_shows_the_demo_models_marked_as_demo(
    isolated_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not assembled in this empty data dir: listed without assembling them (no 500 MB copy).
    assert main(["models", "list"]) == 0
    table = capsys.readouterr().out
    for key in DEMO_MODELS:
        assert any(line.split()[0] == key and "demo:" in line for line in table.splitlines())
    assert "not CodeGemma" in table and "no models in" not in table
    assert not (isolated_store / "demo-models").exists()
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["alias"] for m in listed if m["demo"]} == set(DEMO_MODELS)


@pytest.mark.slow
def test_list_inspects_assembled_demo_models(
    demo_paths: dict[str, Path], isolated_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = isolated_store / "demo-models"
    cache.mkdir(parents=True)
    for key, path in demo_paths.items():
        (cache / path.name).symlink_to(path)
        (cache / path.name).with_suffix(".sha256").write_text(DEMO_MODELS[key].sha256 + "\n")
    assert main(["models", "list", "--json"]) == 0
    listed = {m["alias"]: m for m in json.loads(capsys.readouterr().out)}
    qwen = listed["qwen2.5-coder-0.5b"]
    assert qwen["demo"] and qwen["exists"] and qwen["family"] == "qwen2.5-coder" and qwen["fim"]
    assert listed["gemma3-270m"]["family"] == "gemma"
