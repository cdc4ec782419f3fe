"""Remote-engine fixtures: a real llama_cpp.server upstream (one per module) and cgstudio in front of it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from cgstudio.core.settings import Settings, load_settings
from cgstudio.engine.remote import OpenAIEngine, upstream_settings
from cgstudio.server import ServerSettings, create_app
from cgstudio.server.config import ModelSpec
from cgstudio.testing.loopback import free_port, serve_app
from cgstudio.testing.subprocess_server import server_process

N_CTX = 2048


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
    url = f"http://127.0.0.1:{port}"
    with server_process(cmd, url + "/v1/models", log) as proc:
        yield Upstream(url, proc, log)


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
def front(base_url: str, *, alias: str = "remote", parallel: int = 2, **upstream: Any) -> Iterator[Front]:
    """cgstudio (all three dialects, the pipeline and its guards) in front of ``base_url``."""
    config = ServerSettings(
        models=[ModelSpec(alias=alias, path=Path("remote"))],
        settings=isolated_settings(),
        parallel=parallel,
        upstream=upstream_settings(base_url=base_url, **upstream),
    )
    app = create_app(config)
    with serve_app(app) as url:
        yield Front(url, app)
