"""The completion cache that makes ``cgstudio eval`` resumable.

Layout (``$CGSTUDIO_HOME/eval-cache``, else ``$XDG_CACHE_HOME/cgstudio/eval-cache``, else
``~/.cache/cgstudio/eval-cache``; ``--cache-dir`` overrides)::

    <model key[:16]>/<task set>-<settings key[:16]>.jsonl   one completion per line, appended
    <model key[:16]>/<task set>-<settings key[:16]>.json    the model and settings the key stands for

The model key is ``gguf_fingerprint`` (sha256 over the size and the first and last 16 MiB of the
GGUF, fast yet it changes with any re-quantization) or ``remote_fingerprint`` (base URL + model
name). The settings key hashes everything that changes what the model generates: sampling
(temperature, top-k/p, min-p, max tokens, stops, base seed), guards, n_ctx and KV cache types, the
prompt style and ``PROTOCOL_VERSION``. A line is used only when its task's prompt and suffix still
hash to the stored digest, so a changed data set regenerates instead of scoring stale text.

Lines are appended with one ``write`` on an ``O_APPEND`` descriptor, so an interrupted run loses at
most the completion in flight, and a torn last line is skipped on reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Bump when a prompt or generation rule changes what a model is asked (not how answers are scored).
# 2: editor prompts take the lines above a line-start cursor and a prefix window;
# 3: a new prefix window leaves room for those lines
PROTOCOL_VERSION = 3
_EDGE_BYTES = 16 << 20


def default_cache_dir() -> Path:
    if home := os.environ.get("CGSTUDIO_HOME"):
        return Path(home) / "eval-cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cgstudio" / "eval-cache"


def gguf_fingerprint(path: str | Path) -> str:
    """sha256 over the file size and its first and last 16 MiB (the whole file when smaller)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        h.update(f"gguf:{size}:".encode())
        h.update(fh.read(_EDGE_BYTES))
        if size > 2 * _EDGE_BYTES:
            fh.seek(size - _EDGE_BYTES)
            h.update(fh.read(_EDGE_BYTES))
        elif size > _EDGE_BYTES:
            h.update(fh.read())
    return h.hexdigest()


def remote_fingerprint(base_url: str, model: str) -> str:
    return hashlib.sha256(f"remote:{base_url.rstrip('/')}\n{model}".encode()).hexdigest()


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    doc = json.dumps({"protocol": PROTOCOL_VERSION, **settings}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(doc.encode()).hexdigest()


def task_digest(prompt: str, suffix: str) -> str:
    return hashlib.sha256(f"{prompt}\x00{suffix}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CachedCompletion:
    """What the model produced for one task and sample, before any extraction or scoring."""

    task_id: str
    sample: int
    digest: str
    text: str  # the raw model output (for chat: the whole reply)
    finish_reason: str
    completion_tokens: int | None
    generation_s: float
    warnings: tuple[str, ...] = ()  # the pipeline's warning codes, e.g. "repetition"

    def __post_init__(self) -> None:
        object.__setattr__(self, "warnings", tuple(self.warnings))  # JSON gives a list


class CompletionCache:
    """Completions of one model under one settings key for one task set; see the module docstring."""

    def __init__(self, root: Path, model_key: str, settings_key: str, task_set: str) -> None:
        self.dir = root / model_key[:16]
        stem = f"{task_set}-{settings_key[:16]}"
        self.path = self.dir / f"{stem}.jsonl"
        self.meta_path = self.dir / f"{stem}.json"
        self._entries: dict[tuple[str, int], CachedCompletion] | None = None

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.meta_path.exists():
            tmp = self.meta_path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            tmp.replace(self.meta_path)

    def _load(self) -> dict[tuple[str, int], CachedCompletion]:
        if self._entries is None:
            self._entries = {}
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                lines = []
            for line in lines:
                try:
                    entry = CachedCompletion(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a torn line from an interrupted write
                self._entries[(entry.task_id, entry.sample)] = entry
        return self._entries

    def get(self, task_id: str, sample: int, digest: str) -> CachedCompletion | None:
        entry = self._load().get((task_id, sample))
        return entry if entry is not None and entry.digest == digest else None

    def put(self, entry: CachedCompletion) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(asdict(entry), ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # end a torn line first, or this one would be lost with it
            os.write(fd, line)
        finally:
            os.close(fd)
        self._load()[(entry.task_id, entry.sample)] = entry

    def __len__(self) -> int:
        return len(self._load())
