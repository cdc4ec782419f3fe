"""``cgstudio pull`` against a local fake Hub: progress, resume, checksums, gated repos, no network."""

from __future__ import annotations

import hashlib
import itertools
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakehub import FakeHub

from cgstudio.cli.main import main
from cgstudio.core.errors import (
    ChecksumMismatchError,
    DownloadInterruptedError,
    GatedRepoAccessError,
    HubError,
    HubUnreachableError,
    ModelNotFoundError,
)
from cgstudio.store import hub as hub_mod
from cgstudio.store.pull import pull
from cgstudio.store.resolve import resolve
from cgstudio.store.store import ModelStore

Q4 = "codegemma-2b-Q4_K_M.gguf"


def _target(home: Path, repo: str, name: str) -> Path:
    return home / "models" / "hf" / repo / name


def test_pull_downloads_verifies_registers_and_reports_progress(
    fake_hub: FakeHub, isolated_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    data = fake_hub.repos["bartowski/codegemma-2b-GGUF"].files[Q4]
    steps: list[tuple[int, int]] = []
    result = pull("codegemma-2b", progress=lambda d, t: steps.append((d, t)))

    target = _target(isolated_store, "bartowski/codegemma-2b-GGUF", Q4)
    assert result.downloaded and Path(result.model.path) == target and target.read_bytes() == data
    assert (
        result.model.alias == "codegemma-2b:q4_k_m"
        and result.model.sha256 == hashlib.sha256(data).hexdigest()
    )
    assert (
        result.model.family == "codegemma" and result.model.managed and result.commit == "c0ffee" + "0" * 34
    )
    # progress: from 0 to the full size, never backwards, in several steps
    assert steps[0] == (0, len(data)) and steps[-1] == (len(data), len(data)) and len(steps) > 5
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(steps))
    # the alias works anywhere a --model is taken, with or without the quant tag
    assert resolve("codegemma-2b:q4_k_m").path == target and resolve("codegemma-2b").path == target
    # the token goes to the Hub, never to the CDN it redirects to
    assert fake_hub.seen("/api/models/")[0].headers["authorization"] == "Bearer hf_secret"
    cdn = fake_hub.seen("/cdn/")
    assert cdn and all("authorization" not in r.headers for r in cdn)
    assert not list(target.parent.glob("*.part*"))


def test_pull_cli_prints_a_progress_bar_and_the_alias(
    fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pull", "codegemma-2b:Q8_0"]) == 0
    out, err = capsys.readouterr()
    assert "bartowski/codegemma-2b-GGUF" in err and "codegemma-2b-Q8_0.gguf" in err
    assert "download" in err and "kB" in err  # rich's final progress line (DownloadColumn)
    assert "codegemma-2b:q8_0" in out and "sha256 verified" in out


def test_resume_after_an_interrupted_download(fake_hub: FakeHub, isolated_store: Path) -> None:
    data = fake_hub.repos["bartowski/codegemma-2b-GGUF"].files[Q4]
    cut = len(data) // 3
    fake_hub.drop_after = cut
    with pytest.raises(DownloadInterruptedError, match="run the same command again to resume"):
        pull("codegemma-2b", retries=0)
    part = _target(isolated_store, "bartowski/codegemma-2b-GGUF", Q4 + ".part")
    kept = part.stat().st_size
    assert 0 < kept <= cut and ModelStore().list() == []

    steps: list[tuple[int, int]] = []
    result = pull("codegemma-2b", progress=lambda d, t: steps.append((d, t)))
    assert result.downloaded and Path(result.model.path).read_bytes() == data
    last_get = fake_hub.seen("/cdn/")[-1]
    assert last_get.headers["range"] == f"bytes={kept}-"  # resumed, not restarted
    assert fake_hub.cdn_bytes_sent == cut + len(data) - kept  # only the missing tail came again
    assert steps[0] == (kept, len(data))
    assert not part.exists()


def test_a_dropped_connection_is_resumed_within_one_pull(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_mod, "time", SimpleNamespace(sleep=lambda s: None))  # no backoff wait
    data = fake_hub.repos["bartowski/codegemma-2b-GGUF"].files[Q4]
    fake_hub.drop_after = 1000
    result = pull("codegemma-2b")
    assert Path(result.model.path).read_bytes() == data
    gets = [r for r in fake_hub.seen("/cdn/") if r.method == "GET"]
    assert len(gets) == 2 and gets[1].headers["range"].startswith("bytes=")


def test_a_partial_file_of_another_version_is_not_resumed(fake_hub: FakeHub, isolated_store: Path) -> None:
    target = _target(isolated_store, "bartowski/codegemma-2b-GGUF", Q4)
    target.parent.mkdir(parents=True)
    target.with_name(Q4 + ".part").write_bytes(b"GGUF stale bytes from an older upload")
    result = pull("codegemma-2b")
    assert Path(result.model.path).read_bytes() == fake_hub.repos["bartowski/codegemma-2b-GGUF"].files[Q4]
    assert "range" not in fake_hub.seen("/cdn/")[-1].headers


def test_checksum_mismatch_is_rejected(fake_hub: FakeHub, isolated_store: Path) -> None:
    fake_hub.corrupt = True
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        pull("codegemma-2b")
    folder = _target(isolated_store, "bartowski/codegemma-2b-GGUF", Q4).parent
    assert not list(folder.iterdir())  # neither the bad file nor its partial stays
    assert ModelStore().list() == []


def test_gated_repo_401_says_accept_the_license_and_set_hf_token(
    fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(GatedRepoAccessError) as exc:
        pull("codegemma-2b:F16")
    msg = exc.value.message
    assert "HTTP 401" in msg and "Gemma license" in msg and "HF_TOKEN" in msg
    assert "https://huggingface.co/google/codegemma-2b-GGUF" in msg
    assert main(["pull", "codegemma-2b:F16"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the Hub refused access") and "Traceback" not in err


def test_gated_repo_403_with_a_token_that_did_not_accept(
    fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_not_accepted")
    with pytest.raises(GatedRepoAccessError, match=r"HTTP 403.*has not accepted"):
        pull("codegemma-2b:F16")
    monkeypatch.setenv("HF_TOKEN", "hf_accepted")
    result = pull("codegemma-2b:F16")
    assert result.repo == "google/codegemma-2b-GGUF" and result.model.alias == "codegemma-2b:f16"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_hub_is_one_clean_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(HubUnreachableError, match="cannot reach the Hugging Face Hub"):
        pull("codegemma-2b")
    assert main(["pull", "codegemma-2b"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot reach") and "Traceback" not in err


def test_offline_mode_is_a_clean_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE"):
        pull("codegemma-2b")


def test_unknown_quant_lists_what_exists(fake_hub: FakeHub) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no Q5_K_M GGUF for codegemma-2b.*Q4_K_M, Q8_0"):
        pull("codegemma-2b:Q5_K_M", repo="bartowski/codegemma-2b-GGUF")


def test_second_pull_is_a_no_op_and_direct_repos_work(fake_hub: FakeHub) -> None:
    first = pull("bartowski/codegemma-2b-GGUF:Q8_0")
    assert first.downloaded and first.model.alias == "codegemma-2b:q8_0"
    gets = len(fake_hub.seen("/cdn/"))
    again = pull("bartowski/codegemma-2b-GGUF:Q8_0")
    assert not again.downloaded and len(fake_hub.seen("/cdn/")) == gets


def test_pull_json_and_list(fake_hub: FakeHub, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["pull", "codegemma-2b", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["alias"] == "codegemma-2b:q4_k_m" and doc["repo"] == "bartowski/codegemma-2b-GGUF"
    assert main(["pull", "--list"]) == 0
    assert "codegemma-1.1-7b-it" in capsys.readouterr().out


def test_one_download_per_file_at_a_time(fake_hub: FakeHub, isolated_store: Path) -> None:
    import fcntl

    lock = _target(isolated_store, "bartowski/codegemma-2b-GGUF", Q4 + ".lock")
    lock.parent.mkdir(parents=True)
    with lock.open("w") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # another process is downloading
        with pytest.raises(HubError, match="another cgstudio pull is downloading"):
            pull("codegemma-2b")
    assert pull("codegemma-2b").downloaded


def test_missing_repositories_are_skipped_or_reported(fake_hub: FakeHub) -> None:
    with pytest.raises(ModelNotFoundError, match="lmstudio-community/codegemma-2b-GGUF was not found"):
        pull("codegemma-2b:Q9_K")  # the catalog's other sources are tried before giving up
    with pytest.raises(
        ModelNotFoundError, match=r"nobody/none-GGUF was not found on the Hub \(or it is private"
    ):
        pull("nobody/none-GGUF")
