"""Scores and report of ``cgstudio eval repo``, and its corpus handling (offline)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from cgstudio.evaluation import repo_corpus
from cgstudio.evaluation.repo_corpus import CorpusError, Sdist, safe_extract
from cgstudio.evaluation.repo_report import summarise, table, verdict
from cgstudio.evaluation.repo_run import RepoRecord
from cgstudio.evaluation.repo_scoring import identifier_f1, identifiers, score_line


def test_exact_match_normalises_whitespace_and_takes_the_first_line() -> None:
    s = score_line("x  =  store.load(path)\nmore()", "x = store.load(path)", "load")
    assert s.exact and s.identifier_em and s.identifier_f1 == 1.0 and s.target_hit
    assert s.edit_similarity == 1.0
    miss = score_line("x = store.read(path)", "x = store.load(path)", "load")
    assert not miss.exact and not miss.identifier_em and not miss.target_hit
    assert miss.identifier_f1 == pytest.approx(0.75)  # 3 of 4 identifiers on each side
    assert 0 < miss.edit_similarity < 1


def test_identifiers_leave_keywords_out() -> None:
    assert identifiers("if not x.ready and y in z:") == ["x", "ready", "y", "z"]
    assert identifier_f1(["a", "b"], ["a", "c"]) == 0.5
    assert identifier_f1([], []) == 1.0 and identifier_f1(["a"], []) == 0.0


def _record(condition: str, exact: bool, ctx: int, ttft: float) -> RepoRecord:
    return RepoRecord(
        "p/a.py:L1", condition, "load", "method", "b.py", "x = load()", "x = load()" if exact else "x = 1",
        exact, exact, 1.0 if exact else 0.0, 1.0 if exact else 0.5, exact, ctx, [], False, ttft, 10, 0.1,
        3, "stop", "single_line",
    )  # fmt: skip


def test_summary_ratio_and_verdict() -> None:
    records = [
        _record("none", True, 0, 0.1),
        _record("none", False, 0, 0.1),
        _record("none", False, 0, 0.3),
        _record("all", True, 500, 0.4),
        _record("all", True, 300, 0.6),
        _record("all", False, 400, 0.5),
    ]
    by = summarise(records, ["none", "all"])
    assert by["none"]["exact"] == 1 and by["all"]["exact"] == 2
    assert by["all"]["exact_vs_none"] == pytest.approx(2.0) and by["none"]["exact_vs_none"] is None
    assert by["all"]["context_tokens_mean"] == 400 and by["none"]["ttft_s_mean"] == pytest.approx(0.5 / 3)
    assert "meets the 1.5× target" in (verdict(by) or "")
    assert table(by).count("\n") == 3
    by2 = summarise(records[:4], ["none", "all"])  # 1 vs 1: misses
    assert "misses" in (verdict(by2) or "")


def _tar(entries: list[tarfile.TarInfo], data: bytes = b"x = 1\n") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in entries:
            if info.isfile():
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    "bad",
    [
        _info("../evil.py"),
        _info("/etc/evil.py"),
        _info("pkg/../../evil.py"),
        _info("pkg/link", tarfile.SYMTYPE, "/etc/passwd"),
        _info("pkg/hard", tarfile.LNKTYPE, "pkg/a.py"),
    ],
    ids=["dotdot", "absolute", "inner-dotdot", "symlink", "hardlink"],
)
def test_unsafe_members_refuse_the_whole_archive(tmp_path: Path, bad: tarfile.TarInfo) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(_tar([_info("pkg/a.py"), bad]))
    with pytest.raises(CorpusError):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written


def test_size_caps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(_tar([_info("pkg/a.py")], data=b"#" * 100))
    monkeypatch.setattr(repo_corpus, "MAX_MEMBER_BYTES", 50)
    with pytest.raises(CorpusError, match="over"):
        safe_extract(archive, tmp_path / "out")


def test_fetch_verifies_the_hash_and_explains_offline(tmp_path: Path) -> None:
    body = _tar([_info("pkg-1.0/pkg/a.py")])
    good = hashlib.sha256(body).hexdigest()
    url = "http://127.0.0.1:9/pkg-1.0.tar.gz"  # nothing listens: as offline
    cache = tmp_path / "cache"
    (cache / "sdist").mkdir(parents=True)
    (cache / "sdist" / "pkg-1.0.tar.gz").write_bytes(body)
    root = repo_corpus.fetch(Sdist("pkg", "1.0", url, good, "2025-01-01"), cache)
    assert root.name == "pkg-1.0" and (root / "pkg" / "a.py").read_text() == "x = 1\n"
    # A cached archive whose hash is not the pinned one is never unpacked: it is fetched again.
    wrong = Sdist("pkg", "1.1", url, "0" * 64, "2025-01-01")
    with pytest.raises(CorpusError, match="Run again when online"):
        repo_corpus.fetch(wrong, cache, timeout_s=2)
    assert not (cache / "src" / "pkg-1.1").exists()


def test_corpus_manifest_is_pinned() -> None:
    names = [s.name for s in repo_corpus.CORPUS]
    assert 3 <= len(names) <= 6 and len(set(names)) == len(names)
    for s in repo_corpus.CORPUS:
        assert len(s.sha256) == 64 and s.url.startswith("https://files.pythonhosted.org/")
        assert s.url.endswith(".tar.gz") and s.uploaded >= "2024-10-01"
    with pytest.raises(Exception, match="not in the corpus"):
        repo_corpus.select(("nope",))
