"""The completion cache: keys, torn lines, default location."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.evaluation.cache import (
    CachedCompletion,
    CompletionCache,
    default_cache_dir,
    gguf_fingerprint,
    remote_fingerprint,
    settings_fingerprint,
    task_digest,
)


def _entry(task_id: str, text: str = "x\n", sample: int = 0) -> CachedCompletion:
    return CachedCompletion(task_id, sample, task_digest("p", "s"), text, "eos", 3, 0.5)


def test_put_then_get_across_instances(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path, "m" * 64, "s" * 64, "humaneval")
    cache.put(_entry("HumanEval/0"))
    cache.put(_entry("HumanEval/0", sample=1, text="y\n"))
    fresh = CompletionCache(tmp_path, "m" * 64, "s" * 64, "humaneval")
    assert len(fresh) == 2
    assert fresh.get("HumanEval/0", 1, task_digest("p", "s")) == _entry("HumanEval/0", "y\n", 1)
    assert fresh.get("HumanEval/0", 0, task_digest("p", "other suffix")) is None
    assert (
        CompletionCache(tmp_path, "m" * 64, "t" * 64, "humaneval").get(
            "HumanEval/0", 0, task_digest("p", "s")
        )
        is None
    )


def test_a_torn_line_loses_only_itself(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path, "m" * 64, "s" * 64, "humaneval")
    cache.put(_entry("HumanEval/0"))
    with open(cache.path, "a", encoding="utf-8") as fh:
        fh.write('{"task_id": "HumanEval/1", "sam')  # killed mid-write
    CompletionCache(tmp_path, "m" * 64, "s" * 64, "humaneval").put(_entry("HumanEval/2"))
    fresh = CompletionCache(tmp_path, "m" * 64, "s" * 64, "humaneval")
    assert len(fresh) == 2
    assert fresh.get("HumanEval/2", 0, task_digest("p", "s")) is not None


def test_meta_is_written_once(tmp_path: Path) -> None:
    cache = CompletionCache(tmp_path, "m" * 64, "s" * 64, "humaneval")
    cache.write_meta({"a": 1})
    cache.write_meta({"a": 2})
    assert '"a": 1' in cache.meta_path.read_text()


def test_gguf_fingerprint_sees_size_head_and_tail(tmp_path: Path) -> None:
    big = 40 << 20
    base = bytearray(big)
    paths = {}
    for name, pos in [("same", None), ("head", 10), ("tail", big - 10), ("middle", big // 2)]:
        data = bytearray(base)
        if pos is not None:
            data[pos] = 1
        paths[name] = tmp_path / f"{name}.gguf"
        paths[name].write_bytes(bytes(data))
    fp = {name: gguf_fingerprint(p) for name, p in paths.items()}
    assert fp["head"] != fp["same"] and fp["tail"] != fp["same"]
    assert fp["middle"] == fp["same"]  # by design: only the edges are read
    small = tmp_path / "small.gguf"
    small.write_bytes(b"abc")
    assert gguf_fingerprint(small) != gguf_fingerprint(paths["same"])


def test_keys() -> None:
    assert remote_fingerprint("http://h:1/v1/", "m") == remote_fingerprint("http://h:1/v1", "m")
    assert remote_fingerprint("http://h:1/v1", "m") != remote_fingerprint("http://h:1/v1", "n")
    assert settings_fingerprint({"a": 1, "b": 2}) == settings_fingerprint({"b": 2, "a": 1})
    assert settings_fingerprint({"a": 1}) != settings_fingerprint({"a": 2})


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CGSTUDIO_HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / "eval-cache"
    monkeypatch.delenv("CGSTUDIO_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "cgstudio" / "eval-cache"
