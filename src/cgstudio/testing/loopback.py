"""Serving an ASGI app on loopback for tests: ``with serve_app(app) as url: httpx.get(url + "/health")``.

uvicorn runs in a daemon thread of the test process on a free 127.0.0.1 port, so tests can reach
the app over real HTTP (streaming, disconnects, real clients) and still inspect its state.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers that take a port number)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_app(app: Any, *, start_timeout_s: float = 60, **config: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port until the block ends; yield its base URL.

    ``config`` goes to ``uvicorn.Config`` (e.g. ``lifespan="on"``). On exit the server finishes
    its open requests for up to 3 s, then stops.
    """
    options: dict[str, Any] = {"log_level": "warning", "timeout_graceful_shutdown": 3, **config}
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, **options))
    with serve_server(server, start_timeout_s=start_timeout_s) as url:
        yield url


@contextlib.contextmanager
def serve_server(
    server: uvicorn.Server, sockets: list[socket.socket] | None = None, *, start_timeout_s: float = 60
) -> Iterator[str]:
    """Run a prepared uvicorn ``server`` in a daemon thread until the block ends; yield its base URL.

    ``sockets``: already-bound listening sockets (as ``cgstudio serve`` binds them); without them
    the server binds its config's host and port. Stopping asks the server to exit and waits for it.
    """
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": sockets}, name="uvicorn-loopback", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    host, port = (sockets[0] if sockets else server.servers[0].sockets[0]).getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
