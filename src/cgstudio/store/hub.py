"""The Hugging Face Hub, through huggingface_hub's API client and the Hub's documented endpoints.

    GET  {HF_ENDPOINT}/api/models/{repo}/revision/{rev}?blobs=true   file list, commit, LFS sha256
    HEAD {HF_ENDPOINT}/{repo}/resolve/{commit}/{file}                  X-Repo-Commit, X-Linked-Etag/ETag,
                                                                       X-Linked-Size (huggingface_hub)
    GET  {HF_ENDPOINT}/{repo}/resolve/{commit}/{file}  + Range        the bytes (redirects to a CDN)

Downloads go to ``<target>.part`` with a ``.part.json`` note of what they are, resume with
``Range: bytes=N-`` (here after a dropped connection, or in the next ``cgstudio pull``), and are
checked against the LFS sha256 before the file is moved into place. ``HF_ENDPOINT`` and
``HF_TOKEN`` are read at call time (huggingface_hub reads ``HF_ENDPOINT`` once, at import).

Errors, each a one-line message with what to do next:

    HubError                    the Hub answered with an error we do not handle specially
    ├── HubUnreachableError     no connection (offline, DNS, refused, timeout) or HF_HUB_OFFLINE
    ├── GatedRepoAccessError    HTTP 401/403: the Gemma license is not accepted or HF_TOKEN is missing
    ├── ChecksumMismatchError   the bytes do not hash to the Hub's sha256 (the partial file is removed)
    └── DownloadInterruptedError  the connection dropped too often; the partial file is kept for resume
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# huggingface_hub is imported inside the functions that use it: it is slow to import and reads
# HF_ENDPOINT/HF_HUB_OFFLINE once at import, which `cgstudio pull` sets first (start-up time, tests).
from cgstudio.core.errors import (
    CGStudioError,
    ChecksumMismatchError,
    DownloadInterruptedError,
    GatedRepoAccessError,
    HubError,
    HubUnreachableError,
    ModelNotFoundError,
)

DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK = 1 << 20
ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    filename: str
    commit: str
    size: int | None
    sha256: str | None  # the LFS oid; None for a non-LFS file


@dataclass(frozen=True)
class RepoListing:
    repo: str
    commit: str
    files: dict[str, RemoteFile]
    gated: bool


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def _network_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [httpx.TransportError, ConnectionError, TimeoutError]
    try:  # huggingface_hub >= 1.0 speaks httpx (2.x: its "httpx2" fork); older versions use requests
        import httpx2

        errs.append(httpx2.TransportError)
    except ImportError:
        pass
    try:
        import requests

        errs.append(requests.ConnectionError)
        errs.append(requests.Timeout)
    except ImportError:
        pass
    return tuple(errs)


def _gated_message(repo: str, status: int) -> str:
    who = "HF_TOKEN is not set" if not _token() else "the account of HF_TOKEN has not accepted it"
    return (
        f"the Hub refused access to {repo} (HTTP {status}): CodeGemma is gated and {who}. "
        f"Accept the Gemma license on https://huggingface.co/{repo}, then set HF_TOKEN to a read token "
        "of that account (https://huggingface.co/settings/tokens)"
    )


def _unreachable(exc: BaseException) -> HubUnreachableError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return HubUnreachableError(
        f"cannot reach the Hugging Face Hub at {endpoint()} ({reason}); check the network, a proxy or "
        "HF_ENDPOINT, or register a local file with `cgstudio models add PATH.gguf`"
    )


def _check_offline() -> None:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise HubUnreachableError(
            "HF_HUB_OFFLINE is set, so cgstudio will not contact the Hub; unset it to download, "
            "or register a local file with `cgstudio models add PATH.gguf`"
        )


def _map_hub_error(exc: BaseException, repo: str) -> CGStudioError:
    """huggingface_hub's exceptions -> ours. Network errors become HubUnreachableError."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return HubUnreachableError(
            "huggingface_hub is in offline mode (HF_HUB_OFFLINE); unset it to download, "
            "or register a local file with `cgstudio models add PATH.gguf`"
        )
    if isinstance(exc, HfHubHTTPError):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", 0) or 0
        error_code = response.headers.get("X-Error-Code", "") if response is not None else ""
        if isinstance(exc, GatedRepoError) or error_code == "GatedRepo":
            return GatedRepoAccessError(_gated_message(repo, status or 403))
        if isinstance(exc, RepositoryNotFoundError) or error_code == "RepoNotFound":
            # the Hub answers 401 RepoNotFound to anonymous callers, for missing and private repos alike
            hint = "" if _token() else " (or it is private: set HF_TOKEN)"
            return ModelNotFoundError(f"{repo} was not found on the Hub{hint}; see `cgstudio pull --list`")
        if status in (401, 403):
            return GatedRepoAccessError(_gated_message(repo, status))
        if isinstance(exc, RevisionNotFoundError):
            return ModelNotFoundError(f"{repo} has no such revision on the Hub")
        if status == 404:
            return ModelNotFoundError(
                f"{repo} was not found on the Hub; check the name (`cgstudio pull --list`)"
            )
        return HubError(
            f"the Hub answered HTTP {status} for {repo}: {str(exc).splitlines()[0]}; try again later"
        )
    if isinstance(exc, _network_errors()):
        return _unreachable(exc)
    return HubError(f"talking to the Hub about {repo} failed: {type(exc).__name__}: {exc}")


def list_repo(repo: str, revision: str = "main") -> RepoListing:
    """The repository's files at ``revision`` with sizes and LFS sha256 (one API call)."""
    from huggingface_hub import HfApi

    _check_offline()
    try:
        info = HfApi(endpoint=endpoint()).model_info(
            repo, revision=revision, files_metadata=True, token=_token()
        )
    except Exception as exc:  # mapped to one typed error; nothing escapes as a traceback
        raise _map_hub_error(exc, repo) from exc
    commit = info.sha or revision
    files: dict[str, RemoteFile] = {}
    for s in info.siblings or []:
        lfs: Any = s.lfs
        sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
        files[s.rfilename] = RemoteFile(repo, s.rfilename, commit, s.size, sha)
    return RepoListing(repo, commit, files, bool(getattr(info, "gated", False)))


def file_url(f: RemoteFile) -> str:
    from huggingface_hub import hf_hub_url

    return hf_hub_url(f.repo, f.filename, revision=f.commit, endpoint=endpoint())


def head_file(f: RemoteFile) -> RemoteFile:
    """Confirm the file with the resolve endpoint (HEAD); fills in a missing sha256/size from its headers."""
    from huggingface_hub import get_hf_file_metadata

    try:
        meta = get_hf_file_metadata(file_url(f), token=_token(), endpoint=endpoint())
    except Exception as exc:
        raise _map_hub_error(exc, f.repo) from exc
    etag = (meta.etag or "").strip('"').lower()
    sha = f.sha256 or (etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None)
    if f.sha256 and len(etag) == 64 and etag != f.sha256:
        raise ChecksumMismatchError(
            f"the Hub disagrees with itself about {f.repo}/{f.filename}: LFS sha256 {f.sha256[:12]}… "
            f"but ETag {etag[:12]}…; try again later"
        )
    return RemoteFile(f.repo, f.filename, meta.commit_hash or f.commit, f.size or meta.size, sha)


def _headers(offset: int) -> dict[str, str]:
    from huggingface_hub.utils import build_hf_headers

    headers = dict(build_hf_headers(token=_token(), library_name="cgstudio"))
    headers["Accept-Encoding"] = "identity"  # byte offsets must mean file offsets
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return headers


@dataclass
class _Partial:
    """The ``.part`` file and the running hash of exactly its bytes."""

    path: Path
    done: int = 0
    total: int = 0
    h: Any = None

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)
        self.h = hashlib.sha256()
        self.done = 0

    def load(self) -> None:
        self.h = hashlib.sha256()
        self.done = 0
        if self.path.exists() and not self.path.is_file():  # a FIFO here would block the open
            raise HubError(f"{self.path} is not a regular file; remove it and pull again")
        if self.path.exists():
            with self.path.open("rb") as fh:
                while block := fh.read(4 * CHUNK):
                    self.h.update(block)
                    self.done += len(block)


def download(
    f: RemoteFile,
    target: Path,
    *,
    progress: ProgressFn | None = None,
    retries: int = 3,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
) -> str:
    """Download ``f`` to ``target``, resuming a matching ``target.part``; return the verified sha256.

    ``retries`` is how many dropped connections are resumed within this call (waiting ``backoff_s``,
    then twice that, ...); when they run out the partial file stays and the next call resumes it.
    One process downloads a given file at a time (an flock on ``target.lock``).
    """
    _check_offline()
    if f.sha256 is None:
        raise HubError(
            f"the Hub publishes no sha256 for {f.repo}/{f.filename} (not an LFS file), "
            "so it cannot be verified"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.with_name(target.name + ".lock"), f.filename):
        return _download_locked(f, target, progress, retries, backoff_s, timeout_s)


@contextlib.contextmanager
def _exclusive(lock_path: Path, name: str) -> Iterator[None]:
    with lock_path.open("w") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no cross-process guard
            yield
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise HubError(f"another cgstudio pull is downloading {name}; wait for it to finish") from exc
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _download_locked(
    f: RemoteFile, target: Path, progress: ProgressFn | None, retries: int, backoff_s: float, timeout_s: float
) -> str:
    assert f.sha256 is not None
    part = _Partial(target.with_name(target.name + ".part"), total=f.size or 0)
    note = target.with_name(target.name + ".part.json")
    expect = {"repo": f.repo, "filename": f.filename, "sha256": f.sha256, "size": f.size}
    try:
        same = json.loads(note.read_text()) == expect
    except (OSError, ValueError):
        same = False
    if not same:  # a partial file of another version (or of unknown origin) is never resumed
        part.path.unlink(missing_ok=True)
    note.write_text(json.dumps(expect))
    part.load()
    if part.total and part.done > part.total:
        part.reset()

    url = file_url(f)
    failures = 0
    with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout_s, connect=15.0)) as client:
        while not (part.total and part.done >= part.total):
            before = part.done
            try:
                _fetch(client, url, f, part, progress)
                if not part.total:  # size unknown: one complete response is the whole file
                    break
                if part.done == before and part.done < part.total:
                    raise httpx.ReadError("the Hub sent no bytes")
            except httpx.TransportError as exc:
                failures += 1
                if failures > retries:
                    size = f"{part.total / 2**20:.1f} MiB" if part.total else "?"
                    raise DownloadInterruptedError(
                        f"the download of {f.filename} was interrupted at {part.done / 2**20:.1f} of {size} "
                        f"({type(exc).__name__}); run the same command again to resume"
                    ) from exc
                time.sleep(min(backoff_s * failures, 10 * backoff_s))
    if f.size is not None and part.done != f.size:
        raise DownloadInterruptedError(
            f"{f.filename}: got {part.done} bytes, the Hub says {f.size}; "
            "run the same command again to resume"
        )
    digest = str(part.h.hexdigest())
    if digest != f.sha256:
        part.path.unlink(missing_ok=True)
        note.unlink(missing_ok=True)
        raise ChecksumMismatchError(
            f"{f.filename} from {f.repo} has sha256 {digest[:16]}…, the Hub says {f.sha256[:16]}…; "
            "the download was damaged or tampered with and was deleted: run the command again"
        )
    os.replace(part.path, target)
    note.unlink(missing_ok=True)
    return digest


def _fetch(
    client: httpx.Client, url: str, f: RemoteFile, part: _Partial, progress: ProgressFn | None
) -> None:
    """One GET from ``part.done`` on, appending to the partial file as bytes arrive."""
    with client.stream("GET", url, headers=_headers(part.done)) as response:
        status = response.status_code
        if status in (401, 403):
            raise GatedRepoAccessError(_gated_message(f.repo, status))
        if status == 404:
            raise ModelNotFoundError(f"{f.repo}/{f.filename} is gone from the Hub (HTTP 404); run pull again")
        if status == 416 and part.total and part.done >= part.total:
            return
        if status == 200 and part.done:
            part.reset()  # the server ignored Range: start over, hash included
        elif status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != part.done:
                raise HubError(
                    f"the Hub resumed {f.filename} at byte {start}, not {part.done}; run pull again"
                )
        elif status != 200:
            raise HubError(f"the Hub answered HTTP {status} for {f.repo}/{f.filename}; try again later")
        if not part.total:
            length = response.headers.get("Content-Length", "")
            part.total = part.done + int(length) if length.isdigit() else 0
        if progress:
            progress(part.done, part.total)
        with part.path.open("ab") as out:
            for block in response.iter_bytes():  # as they arrive: a drop loses no buffered bytes
                out.write(block)
                part.h.update(block)
                part.done += len(block)
                if progress:
                    progress(part.done, part.total)


def _content_range_start(value: str) -> int:
    # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1
