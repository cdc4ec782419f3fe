"""Servers run as subprocesses on loopback for tests, scripts and the bench: start, wait, stop.

``ServeProcess`` runs ``cgstudio serve`` on a free port; it may be stopped and started again on
the same port (a test that loses its server and gets it back)::

    with ServeProcess(["-m", str(model)], log=tmp / "serve.log") as server:
        httpx.get(server.url + "/v1/models")

``server_process`` runs any command (llama-cpp-python's server, ``http.server``) until the block
ends. Both wait until the server answers 200 on a health URL and fail early, with the end of the
server's log, when the process exits first.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from cgstudio.testing.loopback import free_port

__all__ = ["ServeProcess", "ServerStartError", "free_port", "server_process", "stop", "wait_healthy"]

CGSTUDIO_MAIN = (sys.executable, "-m", "cgstudio.cli.main")
LOG_TAIL_CHARS = 4000


class ServerStartError(RuntimeError):
    """The server exited, or did not answer its health URL in time, before it could be used."""


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], timeout_s: float = 180, log: Path | None = None
) -> None:
    """Poll ``url`` until it answers 200; raise ``ServerStartError`` if ``proc`` exits first or
    ``timeout_s`` seconds pass (the message ends with the tail of ``log``, when given)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise ServerStartError(
                f"server exited with code {proc.returncode} before answering {url}{_tail(log)}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise ServerStartError(f"server did not answer {url} within {timeout_s:.0f} s{_tail(log)}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s`` seconds; the exit code.
    A process that has already exited is only reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def _tail(log: Path | None) -> str:
    if log is None or not log.is_file():
        return ""
    text = log.read_text(errors="replace")
    return f"; the end of {log}:\n{text[-LOG_TAIL_CHARS:]}"


def _child_env(env: Mapping[str, str] | None, inherit_cgstudio: bool) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if inherit_cgstudio or not k.startswith("CGSTUDIO_")}
    return {**base, "PYTHONUNBUFFERED": "1", **(env or {})}


@contextlib.contextmanager
def server_process(
    cmd: Sequence[str],
    health_url: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 180,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (stdout and stderr to ``log_path``) until ``health_url`` answers; stop it on exit.

    The child gets this process's environment, unbuffered output, and ``env`` on top.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=_child_env(env, True))
    try:
        wait_healthy(health_url, proc, timeout_s, log_path)
        yield proc
    finally:
        stop(proc)


class ServeProcess:
    """``cgstudio serve ARGS --port PORT`` as a subprocess on 127.0.0.1, started and stopped at will.

    ``log``: stdout and stderr go there (the first start truncates it, a restart appends).
    ``port``: fixed for the object's life, free when it was made unless given.
    ``env``: added to the inherited environment; ``inherit_cgstudio=False`` drops the caller's
    ``CGSTUDIO_*`` variables first, so a developer's settings cannot change a test.
    ``program``: what runs before ``serve`` (default ``python -m cgstudio.cli.main``), e.g. a
    launcher script that patches something first. ``start_timeout_s``: how long ``/health`` may
    take to answer.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        log: Path,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        inherit_cgstudio: bool = True,
        program: Sequence[str] = CGSTUDIO_MAIN,
        start_timeout_s: float = 120,
    ) -> None:
        self.args, self.log, self.env = list(args), log, dict(env or {})
        self.inherit_cgstudio, self.program = inherit_cgstudio, list(program)
        self.start_timeout_s = start_timeout_s
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._starts = 0

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The server's process, while it runs (``RuntimeError`` when it was not started)."""
        if self.proc is None:
            raise RuntimeError(f"the server on {self.url} is not started")
        return self.proc

    @property
    def command(self) -> list[str]:
        return [*self.program, "serve", *self.args, "--port", str(self.port)]

    def start(self) -> ServeProcess:
        """Start the server and return once ``/health`` answers 200 (``ServerStartError`` if not)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"the server on {self.url} is already running")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab" if self._starts else "wb") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_child_env(self.env, self.inherit_cgstudio),
            )
        self._starts += 1
        try:
            wait_healthy(self.url + "/health", self.proc, self.start_timeout_s, self.log)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 20) -> int | None:
        """Stop the server (SIGTERM, then SIGKILL); its exit code, or None if it was not started."""
        if self.proc is None:
            return None
        code = stop(self.proc, timeout_s)
        self.proc = None
        return code

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
