"""cgstudio.testing.subprocess_server.ServeProcess: ``cgstudio serve`` as a subprocess, on a tiny
synthetic model."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cgstudio.testing.subprocess_server import ServeProcess, ServerStartError


def test_stops_and_starts_again_on_the_same_port(codegemma_paths: dict[str, Path], tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    server = ServeProcess(["-m", f"pt={codegemma_paths['control']}", "-c", "512"], log=log)
    with server:
        assert httpx.get(server.url + "/health").json()["models"][0]["name"] == "pt"
        first = server.process.pid
    assert server.proc is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health")
    with pytest.raises(RuntimeError, match="not started"):
        server.process  # noqa: B018
    with server:  # the same URL answers again, from a new process
        assert httpx.get(server.url + "/health").status_code == 200
        assert server.process.pid != first
    assert log.read_text().count("Open http://127.0.0.1") == 2, log.read_text()  # a restart appends


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    server = ServeProcess(["-m", str(tmp_path / "missing.gguf")], log=tmp_path / "serve.log")
    why = r"(?s)exited with code 1 before answering .*/health; the end of .*error: model '.*missing\.gguf'"
    with pytest.raises(ServerStartError, match=why):
        server.start()
    assert server.proc is None
