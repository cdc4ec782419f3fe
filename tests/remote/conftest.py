"""Remote-engine fixtures: a real llama_cpp.server upstream (one per module) and cgstudio in front of it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from cgstudio.core.settings import Settings, load_settings
from cgstudio.engine.remote import OpenAIEngine, upstream_settings
from cgstudio.server import ServerSettings, create_app
from cgstudio.server.config import ModelSpec

N_CTX = 2048


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated_settings(**load: Any) -> Settings:
    """Settings from defaults only (module fixtures run before the autouse environment isolation)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("CGSTUDIO_"):
                mp.delenv(key)
        mp.setenv("CGSTUDIO_PROFILE", "/nonexistent/cgstudio-profile.toml")
        return load_settings({"load": {"n_ctx": N_CTX, **load}})


@dataclass
class Upstream:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def llama_cpp_server(model: Path, log: Path, port: int | None = None) -> Iterator[Upstream]:
    """llama-cpp-python's own server on loopback. It serves one request at a time; with
    interrupt_requests off a waiting request does not cut the running one short, so a quick answer
    to a second request shows that the first was aborted by its client."""
    port = port or free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", "1", "--n_threads_batch", "1",
        "--interrupt_requests", "False", "--verbose", "False",
    ]  # fmt: skip
    out = log.open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({proc.returncode}): {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start within 180 s")
            time.sleep(0.3)
        yield Upstream(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        out.close()


@pytest.fixture(scope="module")
def upstream(qwen_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with llama_cpp_server(qwen_path, tmp_path_factory.mktemp("upstream") / "llama_cpp_server.log") as up:
        yield up


@dataclass
class Front:
    url: str
    app: FastAPI

    def engine(self) -> OpenAIEngine:
        entry = next(iter(self.app.state.registry.entries.values()))
        model, _ = entry.ensure_loaded()  # as the first request would (a no-op once loaded)
        engine = model.engine
        assert isinstance(engine, OpenAIEngine)
        return engine


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread on a free loopback port."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=3)
    )
    thread = threading.Thread(target=server.run, name="uvicorn-remote-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@contextlib.contextmanager
def front(base_url: str, *, alias: str = "remote", parallel: int = 2, **upstream: Any) -> Iterator[Front]:
    """cgstudio (all three dialects, the pipeline and its guards) in front of ``base_url``."""
    config = ServerSettings(
        models=[ModelSpec(alias=alias, path=Path("remote"))],
        settings=isolated_settings(),
        parallel=parallel,
        upstream=upstream_settings(base_url=base_url, **upstream),
    )
    app = create_app(config)
    with serve(app) as url:
        yield Front(url, app)
