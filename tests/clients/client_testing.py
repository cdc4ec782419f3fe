"""Helpers for the real-client tests (fixtures in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class NpmClients:
    dir: Path
    node: str

    @property
    def cn(self) -> Path:
        return self.dir / "node_modules" / ".bin" / "cn"


@dataclass
class RecordingServer:
    url: str
    bodies: list[tuple[str, bytes]] = field(default_factory=list)

    def posted(self, path: str) -> list[bytes]:
        return [body for p, body in self.bodies if p == path]


class Recorder:
    """ASGI wrapper that keeps each HTTP request's path and body (what the client really sent)."""

    def __init__(self, app: Any, sink: list[tuple[str, bytes]]) -> None:
        self.app, self.sink = app, sink

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts: list[bytes] = []

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                parts.append(message.get("body", b""))
                if not message.get("more_body"):
                    self.sink.append((scope["path"], b"".join(parts)))
            return message

        await self.app(scope, recording_receive, send)
