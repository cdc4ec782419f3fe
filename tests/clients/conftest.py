"""Fixtures for the real-client tests: Continue's npm packages, installed from npm on first use,
and a loopback server on the demo Qwen model that records each request body it receives."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from client_testing import NpmClients, Recorder, RecordingServer

from cgstudio.core.settings import load_settings
from cgstudio.server import ServerSettings, create_app
from cgstudio.server.config import ModelSpec
from cgstudio.testing.loopback import serve_app

REPO = Path(__file__).resolve().parents[2]
NPM_SPEC = Path(__file__).parent / "npm" / "package.json"
NPM_DIR = REPO / ".cache" / "npm-clients"  # ignored by git (/.cache/)
UNREACHABLE = ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH")


@pytest.fixture(scope="session")
def npm_clients() -> NpmClients:
    """tests/clients/npm/package.json's pinned packages under .cache/npm-clients (installed once).

    Skips, loudly, only where the npm registry cannot be reached; a missing node or npm is a
    failure (``make test`` installs them, see the Makefile's npm-clients target)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are required for the npm client tests: run `make npm-clients`")
    installed = NPM_DIR / "package.json"
    ready = NPM_DIR / "node_modules" / ".bin" / "cn"
    if not (ready.exists() and installed.is_file() and installed.read_text() == NPM_SPEC.read_text()):
        NPM_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(NPM_SPEC, installed)
        cmd = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
        try:
            proc = subprocess.run(cmd, cwd=NPM_DIR, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip("NPM UNREACHABLE: `npm install` of Continue's packages timed out after 600 s")
        if proc.returncode != 0:
            installed.unlink()  # the next run tries again
            if any(code in proc.stderr for code in UNREACHABLE):
                pytest.skip(f"NPM UNREACHABLE: the npm registry could not be reached:\n{proc.stderr[-800:]}")
            pytest.fail(f"`npm install` failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return NpmClients(NPM_DIR, node)


@pytest.fixture(scope="module")
def qwen_server(qwen_path: Path) -> Iterator[RecordingServer]:
    """``cgstudio serve -m qwen=<demo Qwen> -c 8192`` on loopback, in process, recording bodies."""
    with pytest.MonkeyPatch.context() as mp:  # module fixtures run before the autouse isolation
        for key in list(os.environ):
            if key.startswith("CGSTUDIO_"):
                mp.delenv(key)
        mp.setenv("CGSTUDIO_PROFILE", "/nonexistent/cgstudio-profile.toml")
        settings = load_settings({"load": {"n_ctx": 8192, "n_threads": 2}})
    app = create_app(ServerSettings(models=[ModelSpec(alias="qwen", path=qwen_path)], settings=settings))
    sink: list[tuple[str, bytes]] = []
    with serve_app(Recorder(app, sink), lifespan="on") as url:
        yield RecordingServer(url, sink)
