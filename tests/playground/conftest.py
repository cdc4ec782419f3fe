"""Browser-test fixtures: a real ``cgstudio serve`` subprocess and Debian's Chromium via Playwright.

Playwright cannot download its own browser here, so the tests drive ``/usr/bin/chromium``
(``apt-get install -y chromium``; ``make browser``) through ``executable_path`` and skip
without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cgstudio.testing.loopback import free_port

API_KEY = "studio-test-key"
QWEN = "qwen2.5-coder-0.5b"
GEMMA3 = "gemma3-270m"
MAX_TOKENS = 32  # keeps each generation to a few seconds on a CPU
STORE_KEY = "cgstudio.playground.v1"


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if found := shutil.which(name):
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@dataclass
class Studio:
    """The running server: its URL and key, the two model aliases, the max_tokens pages start with."""

    url: str
    api_key: str
    log: Path
    qwen: str = QWEN
    gemma3: str = GEMMA3
    max_tokens: int = MAX_TOKENS

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.api_key}"}, timeout=60
        )


def _serve_command() -> list[str]:
    script = Path(sys.executable).with_name("cgstudio")
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-c", "from cgstudio.cli.main import main; main()", "serve"]


class ServeProcess:
    """One ``cgstudio serve`` subprocess on a fixed port, that a test may stop and start again."""

    def __init__(self, home: Path, port: int, args: list[str]) -> None:
        self.home, self.port, self.args = home, port, args
        self.url = f"http://127.0.0.1:{port}"
        self.log = home / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CGSTUDIO_")}
        config = self.home / "config"
        env.update(XDG_CONFIG_HOME=str(config), CGSTUDIO_PROFILE=str(config / "profile.toml"))
        cmd = [*_serve_command(), *self.args, "--port", str(self.port), "--log-level", "warning"]
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"cgstudio serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"cgstudio serve did not answer /health in 60 s:\n{self.log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def demo_serve_args(qwen_path: Path, gemma3_path: Path) -> list[str]:
    return ["-m", f"{QWEN}={qwen_path}", "-m", f"{GEMMA3}={gemma3_path}", "--ctx-size", "2048"]


@pytest.fixture(scope="session")
def studio(qwen_path: Path, gemma3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """``cgstudio serve`` with both demo models, an API key and a 2048-token context."""
    args = [*demo_serve_args(qwen_path, gemma3_path), "--api-key", API_KEY, "--keep-alive", "-1"]
    server = ServeProcess(tmp_path_factory.mktemp("studio-home"), free_port(), args)
    server.start()
    try:
        yield Studio(server.url, API_KEY, server.log)
    finally:
        server.stop()


@pytest.fixture
def own_server(qwen_path: Path, gemma3_path: Path, tmp_path: Path) -> Iterator[ServeProcess]:
    """A fresh ``cgstudio serve`` (no model loaded yet) for this test alone; it may stop and restart it."""
    args = [*demo_serve_args(qwen_path, gemma3_path), "--api-key", API_KEY]
    server = ServeProcess(tmp_path, free_port(), args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API keeps an asyncio loop running in this thread until it
    # stops, which breaks any later test that calls asyncio.run().
    exe = chromium_path()
    if exe is None:
        pytest.skip("Chromium is missing: apt-get install -y chromium (make browser)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=90_000)  # a generation on a busy CPU takes a while
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def open_studio(studio: Studio, browser: Any) -> Iterator[Callable[..., Any]]:
    """``open_studio(key=True, width=1440, height=900, url=None, scheme="dark", max_tokens=MAX_TOKENS)``:
    a fresh page on the studio (``url``: another server's; ``scheme``: the prefers-color-scheme the
    browser reports).

    ``key=True`` stores the API key first; ``key=False`` leaves the page to ask for it.
    Sampling starts at ``max_tokens`` and seed 7, so replies stay short and repeatable.
    Page errors (uncaught exceptions) fail the test.
    """
    contexts: list[Any] = []
    errors: list[str] = []

    def factory(
        *,
        key: bool = True,
        width: int = 1440,
        height: int = 900,
        url: str | None = None,
        scheme: str = "dark",
        max_tokens: int = MAX_TOKENS,
    ) -> Any:
        ctx = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
        contexts.append(ctx)
        seed = {"sampling": {"max_tokens": max_tokens, "seed": 7}}
        script = (
            f"if (!localStorage.getItem({json.dumps(STORE_KEY)})) "
            f"localStorage.setItem({json.dumps(STORE_KEY)}, {json.dumps(json.dumps(seed))});"
        )
        if key:
            script += f"localStorage.setItem('cgstudio.apiKey', {json.dumps(API_KEY)});"
        ctx.add_init_script(script)
        page = ctx.new_page()
        page.set_default_timeout(90_000)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto((url or studio.url) + "/")
        return page

    yield factory
    for ctx in contexts:
        ctx.close()
    assert not errors, f"uncaught errors on the page: {errors}"
