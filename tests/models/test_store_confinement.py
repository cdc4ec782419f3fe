"""The store writes and deletes model files only inside itself (issue 12, item 7).

``pull`` joined the file name the Hub lists onto the store path unchecked, so a listed
``../../x-Q4_K_M.gguf`` or an absolute path was written outside the store; ``models rm`` deleted a
"managed" entry's file wherever the registry said it was.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fakehub import FakeHub, FakeRepo

from cgstudio.cli.main import main
from cgstudio.core.errors import HubError, UsageError
from cgstudio.store.pull import pull
from cgstudio.store.store import ModelStore, StoredModel, inside_store


@pytest.mark.parametrize(
    "parts",
    [
        ("hf", "../../escape.gguf"),
        ("hf", "a/../../b.gguf"),
        ("hf", "/etc/x.gguf"),
        ("hf", "a\\..\\b.gguf"),
        ("hf", "a\x00b.gguf"),
        ("hf", ""),
        ("hf", "a//b.gguf"),
        ("hf", "./a.gguf"),
    ],
)
def test_unsafe_names_are_refused(tmp_path: Path, parts: tuple[str, ...]) -> None:
    with pytest.raises(UsageError):
        inside_store(tmp_path / "store", *parts)


def test_safe_names_and_symlinks_out(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert (
        inside_store(root, "hf", "owner/repo", "sub/x-Q4_K_M.gguf")
        == root / "hf/owner/repo/sub/x-Q4_K_M.gguf"
    )
    (root / "hf").mkdir(parents=True)
    (root / "hf" / "out").symlink_to(tmp_path)
    with pytest.raises(UsageError, match="outside the model store"):
        inside_store(root, "hf", "out", "x.gguf")


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_pull_refuses_a_listed_name_that_leaves_the_store(
    fake_hub: FakeHub, gguf_bytes: dict[str, bytes], isolated_store: Path, tmp_path: Path, kind: str
) -> None:
    outside = tmp_path / "outside" / "evil-Q4_K_M.gguf"
    outside.parent.mkdir()
    name = "../../../../outside/evil-Q4_K_M.gguf" if kind == "relative" else str(outside)
    fake_hub.repos["evil/codegemma-GGUF"] = FakeRepo({name: gguf_bytes["q4"]})
    with pytest.raises(HubError, match="outside the model store"):
        pull("evil/codegemma-GGUF:Q4_K_M")
    assert not outside.exists()
    assert not fake_hub.seen("/cdn/")  # nothing was downloaded
    assert ModelStore().list() == []


def test_rm_never_deletes_outside_the_store(codegemma_paths: dict[str, Path], tmp_path: Path) -> None:
    victim = tmp_path / "precious.gguf"
    victim.write_bytes(codegemma_paths["control"].read_bytes())
    store = ModelStore()
    store.put(StoredModel(alias="forged", path=str(victim), managed=True))  # a tampered registry
    with pytest.raises(UsageError, match="outside the model store"):
        store.remove("forged")
    assert victim.exists() and store.get("forged") is not None  # registry untouched too
    # explicit --delete-file on a file registered in place: refused the same way
    other = tmp_path / "other.gguf"
    other.write_bytes(victim.read_bytes())
    store.add(other, alias="inplace")
    assert main(["models", "rm", "inplace", "--delete-file"]) == 2
    assert other.exists() and store.get("inplace") is not None
    # --keep-file unregisters without touching the file
    _, deleted = store.remove("forged", delete_file=False)
    assert not deleted and victim.exists() and store.get("forged") is None


def test_rm_still_deletes_managed_files_inside_the_store(codegemma_paths: dict[str, Path]) -> None:
    store = ModelStore()
    entry = store.add(codegemma_paths["control"], alias="copied", copy=True)
    _, deleted = store.remove("copied")
    assert deleted and not Path(entry.path).exists() and codegemma_paths["control"].exists()
