"""A small stand-in for the Hugging Face Hub on loopback, speaking the endpoints huggingface_hub uses.

    GET  /api/models/{owner}/{name}[/revision/{rev}]?blobs=true   model info: sha, siblings (+ lfs sha256)
    HEAD|GET /{owner}/{name}/resolve/{rev}/{file}                 302 to the "CDN" with X-Repo-Commit,
                                                                   X-Linked-Etag, X-Linked-Size (as the Hub)
    GET  /cdn/{owner}/{name}/{file}                               the bytes; Range -> 206 + Content-Range

The CDN is served as ``localhost`` while the Hub is ``127.0.0.1``: a different origin, as on the real
Hub, so huggingface_hub stops at the redirect and clients must not forward Authorization to it.
Gated repositories answer 401 (no token) or 403 (a token that has not accepted the license) with
``X-Error-Code: GatedRepo``, like the Hub. ``drop_after`` cuts the next CDN response after N bytes;
``corrupt`` serves one flipped byte, so the sha256 cannot match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    commit: str = "c0ffee" + "0" * 34
    gated: bool = False
    accepted_tokens: set[str] = field(default_factory=set)

    def sha(self, name: str) -> str:
        return hashlib.sha256(self.files[name]).hexdigest()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[Seen] = []
        self.drop_after: int | None = None  # cut the next CDN body after this many bytes
        self.corrupt = False
        self.cdn_bytes_sent = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

            def do_GET(self) -> None:
                hub._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- helpers for tests --------------------------------------------------------------------
    def seen(self, prefix: str) -> list[Seen]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    # -- request handling ---------------------------------------------------------------------
    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        headers: dict[str, str],
        body: bytes = b"",
        head: bool = False,
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head and body:
            h.wfile.write(body)

    def _json(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        doc: Any,
        extra: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        body = json.dumps(doc).encode()
        self._send(h, status, {"Content-Type": "application/json", **(extra or {})}, body, head=head)

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        url = urlsplit(h.path)
        path = unquote(url.path)
        self.requests.append(Seen(h.command, path, {k.lower(): v for k, v in h.headers.items()}))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._model_info(h, parts, "blobs=true" in (url.query or ""))
        if parts[0] == "cdn" and len(parts) >= 4:
            return self._cdn(h, "/".join(parts[1:3]), "/".join(parts[3:]), head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(h, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), head)
        self._json(h, 404, {"error": "not found"})

    def _model_info(self, h: BaseHTTPRequestHandler, parts: list[str], blobs: bool) -> None:
        repo_id = "/".join(parts[2:4])
        repo = self.repos.get(repo_id)
        if repo is None:  # the Hub says 401 RepoNotFound to anonymous callers
            return self._json(h, 401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        siblings = []
        for name, data in repo.files.items():
            s: dict[str, Any] = {"rfilename": name}
            if blobs:
                s.update(
                    size=len(data),
                    blobId=hashlib.sha1(data).hexdigest(),
                    lfs={"sha256": repo.sha(name), "size": len(data), "pointerSize": 134},
                )
            siblings.append(s)
        self._json(
            h,
            200,
            {
                "_id": "x",
                "id": repo_id,
                "modelId": repo_id,
                "sha": repo.commit,
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "tags": ["gguf"],
                "siblings": siblings,
            },
        )

    def _authorized(self, h: BaseHTTPRequestHandler, repo: FakeRepo, repo_id: str, head: bool) -> bool:
        if not repo.gated:
            return True
        auth = h.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        if token and token in repo.accepted_tokens:
            return True
        status = 403 if token else 401
        msg = f"Access to model {repo_id} is restricted. You must have access to it and be authenticated."
        self._json(h, status, {"error": msg}, {"X-Error-Code": "GatedRepo", "X-Error-Message": msg}, head)
        return False

    def _resolve(self, h: BaseHTTPRequestHandler, repo_id: str, rev: str, name: str, head: bool) -> None:
        repo = self.repos.get(repo_id)
        if repo is None or name not in repo.files:
            return self._json(h, 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}, head)
        if not self._authorized(h, repo, repo_id, head):
            return
        sha = repo.sha(name)
        location = f"http://localhost:{self.port}/cdn/{repo_id}/{name}"
        self._send(
            h,
            302,
            {
                "Location": location,
                "X-Repo-Commit": repo.commit,
                "X-Linked-Etag": f'"{sha}"',
                "X-Linked-Size": str(len(repo.files[name])),
                "ETag": f'"{sha[:40]}"',
            },
            head=head,
        )

    def _cdn(self, h: BaseHTTPRequestHandler, repo_id: str, name: str, head: bool) -> None:
        repo = self.repos[repo_id]
        data = repo.files[name]
        if self.corrupt:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :]
        size = len(data)
        start = 0
        status = 200
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": f'"{repo.sha(name)}"',
            "Content-Type": "application/octet-stream",
        }
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= size:
                return self._send(h, 416, {"Content-Range": f"bytes */{size}"}, head=head)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        body = data[start:]
        headers["Content-Length"] = str(len(body))
        if head:
            return self._send(h, status, headers, head=True)
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if self.drop_after is not None:
            cut, self.drop_after = self.drop_after, None
            h.wfile.write(body[:cut])
            h.wfile.flush()
            self.cdn_bytes_sent += cut
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(body)
        self.cdn_bytes_sent += len(body)
