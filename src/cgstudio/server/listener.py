"""Listening for ``cgstudio serve``: the bound sockets, bounds on slow clients, graceful shutdown.

uvicorn runs the app. Three things are added around it:

* ``bind`` opens the listening sockets before anything is printed, so a taken port is one clear
  error (ListenError) and "serving on ..." appears only once the address is ours.
* ``BoundedH11Protocol``: uvicorn closes a keep-alive connection idle for 5 s, but only after a
  first response, and any byte received stops that timer. A client that connects and sends
  nothing, or sends its headers a byte a second, holds a connection forever. This protocol
  closes a connection whose request headers have not all arrived ``read_timeout_s`` after it
  was opened (or after the previous response). The body has its own deadline in
  BodyLimitMiddleware (a 408 answer); ``limit_concurrency`` answers 503 beyond
  ``max_connections`` open connections.
* ``GracefulServer``: at shutdown (SIGTERM, Ctrl-C) it first tells the runner, so queued and
  running generations end at once with the dialect's error event, then lets uvicorn wait up to
  ``shutdown_grace_s`` for open responses, then runs the app's shutdown (after a second Ctrl-C
  too, which only skips the wait). A signal that stopped the server gracefully ends the process
  with exit status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from cgstudio.server.config import ServerSettings
from cgstudio.server.errors import ListenError

KEEP_ALIVE_IDLE_S = 5  # uvicorn's default: an idle keep-alive connection is closed after this


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers (see the module docstring)."""

    read_timeout_s: float = 15.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._waiting_for_client():
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._waiting_for_client():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_for_client(self) -> bool:
        # The next request's head, or the rest of a body the app answered without reading (401, 413).
        their, ours = self.conn.their_state, self.conn.our_state
        return their is h11.IDLE or (their is h11.SEND_BODY and ours in (h11.DONE, h11.MUST_CLOSE))

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.read_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _timed_out(self) -> None:
        self._head_timer = None
        if self._waiting_for_client() and not self.transport.is_closing():
            self.transport.close()


def bounded_protocol(read_timeout_s: float) -> type[BoundedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with this server's header deadline."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"read_timeout_s": read_timeout_s})


def uvicorn_config(
    app: ASGIApp, settings: ServerSettings, *, log_level: str = "info", access_log: bool = False
) -> uvicorn.Config:
    """uvicorn settings from ServerSettings: the bounded protocol, the connection cap, the grace.

    uvicorn's access log (a line per request) is off unless ``access_log``: an editor's keystrokes
    would bury everything else.
    """
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=bounded_protocol(settings.read_timeout_s),
        log_level=log_level,
        access_log=access_log,
        lifespan="on",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=KEEP_ALIVE_IDLE_S,
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )


class GracefulServer(uvicorn.Server):
    """uvicorn's Server that ends streams first at shutdown and exits 0 after a stopping signal."""

    def __init__(
        self,
        config: uvicorn.Config,
        before_shutdown: Callable[[], None],
        after_startup: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown
        self.after_startup = after_startup

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.after_startup is not None:
            self.after_startup()  # after uvicorn's own start-up lines: the last thing said

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.before_shutdown()
        await super().shutdown(sockets=sockets)
        if self.force_exit:
            # A second Ctrl-C makes uvicorn skip its waits and the app's shutdown too; the lifespan
            # task, left waiting, is then cancelled at exit and logs a CancelledError traceback.
            # The app's shutdown is quick once the streams are ended, so it still runs (bounded).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.timeout_graceful_shutdown or 5):
                    await self.lifespan.shutdown()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises the caught signal after its graceful shutdown, which ends the process
        # by SIGTERM (status 143) or a KeyboardInterrupt; here a graceful stop is a normal exit.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address of ``host`` (localhost: IPv4 and IPv6), as asyncio would.

    An address whose family this machine lacks (``::1`` without IPv6) is skipped while another
    one binds. Raises ListenError with what to do: the port is taken, the address is not ours...
    """
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(
            f"cannot resolve --host {host}: {exc.strerror}; pass an address such as 127.0.0.1"
        ) from exc
    sockets: list[socket.socket] = []
    unavailable: ListenError | None = None
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, addr in infos:
            if (family, addr[0]) in seen:
                continue
            seen.add((family, addr[0]))
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart despite TIME_WAIT
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and sockets:  # one free port for all addresses
                addr = (addr[0], sockets[0].getsockname()[1], *addr[2:])
            try:
                _bind_one(sock, addr, host, port)
            except ListenError as exc:
                sock.close()
                if not isinstance(exc.__cause__, OSError) or exc.__cause__.errno != errno.EADDRNOTAVAIL:
                    raise
                unavailable = exc
                continue
            sockets.append(sock)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise unavailable or ListenError(f"--host {host} has no address to listen on")
    return sockets


def _bind_one(sock: socket.socket, addr: tuple[Any, ...], host: str, port: int) -> None:
    try:
        sock.bind(addr)
        sock.listen(2048)  # listening before the URL is announced: an early client queues, not refused
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            message = f"port {port} is in use on {host}; stop the other server or pass --port N"
        elif exc.errno == errno.EADDRNOTAVAIL:
            message = f"{host} is not an address of this machine; pass --host 127.0.0.1 (or 0.0.0.0)"
        elif exc.errno == errno.EACCES:
            message = f"no permission to listen on port {port}; pass --port N with N above 1023"
        else:
            message = f"cannot listen on {host}:{port}: {exc.strerror}"
        raise ListenError(message) from exc


def listening_url(sockets: list[socket.socket], host: str) -> str:
    """``http://host:port`` for what was bound (the real port when --port 0)."""
    port = sockets[0].getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host or "0.0.0.0"
    return f"http://{shown}:{port}"


def browser_url(sockets: list[socket.socket], host: str) -> str:
    """The URL to open in a browser on this machine: loopback for a wildcard bind (0.0.0.0, ::)."""
    if host.strip("[]") in ("", "0.0.0.0", "::"):
        return f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    return listening_url(sockets, host)


def run(
    app: FastAPI,
    settings: ServerSettings,
    *,
    log_level: str,
    announce: Callable[[str], None],
    opened: Callable[[str], None] | None = None,
    access_log: bool = False,
) -> None:
    """Bind, ``announce(url)``, serve until SIGTERM/Ctrl-C, shut down gracefully; blocks.

    ``opened(browser_url)`` runs once uvicorn has started, after its own log lines. ``app`` is
    create_app's: its runner is told first at shutdown.
    """
    sockets = bind(settings.host, settings.port)
    announce(listening_url(sockets, settings.host))
    config = uvicorn_config(app, settings, log_level=log_level, access_log=access_log)
    url = browser_url(sockets, settings.host)
    after = (lambda: opened(url)) if opened is not None else None
    GracefulServer(config, before_shutdown=app.state.runner.begin_shutdown, after_startup=after).run(
        sockets=sockets
    )
