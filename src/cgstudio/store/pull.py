"""``cgstudio pull NAME[:QUANT]``: catalog -> Hub listing -> verified download -> store entry."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cgstudio.core.errors import HubError, ModelNotFoundError, UsageError
from cgstudio.store import hub
from cgstudio.store.catalog import match_file, parse_spec, quants_in
from cgstudio.store.store import (
    ModelStore,
    StoredModel,
    alias_taken_error,
    describe_file,
    inside_store,
    normalize_alias,
)


@dataclass(frozen=True)
class PullResult:
    model: StoredModel
    repo: str
    filename: str
    commit: str
    downloaded: bool  # False: the verified file was already in the store


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 << 20):
            h.update(block)
    return h.hexdigest()


def _target(store: ModelStore, remote: hub.RemoteFile) -> Path:
    """Where the download goes: ``<store>/hf/<repo>/<file>``, never outside the store."""
    inside_store(store.root, "hf", remote.repo)
    try:
        return inside_store(store.root, "hf", remote.repo, remote.filename)
    except UsageError as exc:
        raise HubError(
            f"{remote.repo} lists the file {remote.filename!r}, a name that would be written outside "
            "the model store; refusing to download it (pick another file with NAME:QUANT or --repo)"
        ) from exc


def locate(spec: str, *, repo: str | None = None, revision: str = "main") -> tuple[hub.RemoteFile, str]:
    """Find the GGUF for ``spec`` on the Hub: (the remote file, the default alias)."""
    ps = parse_spec(spec, repo=repo)
    missing: list[str] = []
    for source in ps.sources:
        try:
            listing = hub.list_repo(source.repo, revision)
        except ModelNotFoundError:
            if len(ps.sources) == 1:
                raise
            missing.append(f"{source.repo} was not found")
            continue
        ggufs = [name for name in listing.files if name.lower().endswith(".gguf")]
        name = match_file(ggufs, ps.quant, source)
        if name is not None:
            return listing.files[name], ps.default_alias
        pinned = [q for q, fname in source.files.items() if fname in ggufs]
        available = sorted(set(quants_in(ggufs)) | set(pinned))
        missing.append(f"{source.repo} has {', '.join(available) or 'no single-file GGUF'}")
    raise ModelNotFoundError(
        f"no {ps.quant} GGUF for {ps.name}: {'; '.join(missing)}; pick one with {ps.name}:QUANT"
    )


def pull(
    spec: str,
    *,
    repo: str | None = None,
    alias: str | None = None,
    revision: str = "main",
    force: bool = False,
    retries: int = 3,
    progress: hub.ProgressFn | None = None,
    on_start: Callable[[hub.RemoteFile], None] | None = None,
    store: ModelStore | None = None,
) -> PullResult:
    """Download ``spec`` into the store (resuming a partial download) and register it under ``alias``."""
    store = store or ModelStore()
    remote, default_alias = locate(spec, repo=repo, revision=revision)
    name = normalize_alias(alias or default_alias)
    target = _target(store, remote)
    remote = hub.head_file(remote)
    existing = store.get(name)
    if existing is not None and Path(existing.path) != target:
        raise alias_taken_error(name, existing)
    if on_start is not None:
        on_start(remote)

    have = target.is_file() and (remote.size is None or target.stat().st_size == remote.size)
    if have and not force and existing is not None and existing.sha256 == remote.sha256:
        return PullResult(existing, remote.repo, remote.filename, remote.commit, downloaded=False)
    if have and not force and _sha256_file(target) == remote.sha256:
        sha = remote.sha256
        downloaded = False
    else:
        sha = hub.download(remote, target, progress=progress, retries=retries)
        downloaded = True
    entry = describe_file(
        target,
        alias=name,
        managed=True,
        source=f"hf://{remote.repo}@{remote.commit}/{remote.filename}",
        sha256=sha,
    )
    store.put(entry, replace=True)
    return PullResult(entry, remote.repo, remote.filename, remote.commit, downloaded)
