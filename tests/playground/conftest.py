"""Browser-test fixtures: a real ``cgstudio serve`` subprocess and Debian's Chromium via Playwright.

Playwright cannot download its own browser here, so the tests drive ``/usr/bin/chromium``
(``apt-get install -y chromium``; ``make browser``) through ``executable_path`` and skip
without it.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cgstudio.testing.subprocess_server import ServeProcess

API_KEY = "studio-test-key"
QWEN = "qwen2.5-coder-0.5b"
GEMMA3 = "gemma3-270m"
MAX_TOKENS = 32  # keeps each generation to a few seconds on a CPU
STORE_KEY = "cgstudio.playground.v1"
SLOW_PREFILL_SERVE = Path(__file__).with_name("slow_prefill_serve.py")
PREFILL_DELAY_S = 2.0  # the studio polls the phase every 250 ms


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


def serve_process(
    home: Path, args: list[str], env: dict[str, str] | None = None, **options: Any
) -> ServeProcess:
    """``cgstudio serve`` for a browser test: the caller's CGSTUDIO_* variables dropped, the config
    and profile under ``home``, the log in ``home/serve.log``; not started yet. ``options`` go to
    ``ServeProcess``."""
    config = home / "config"
    env = {"XDG_CONFIG_HOME": str(config), "CGSTUDIO_PROFILE": str(config / "profile.toml"), **(env or {})}
    return ServeProcess(
        [*args, "--log-level", "warning"],
        log=home / "serve.log",
        env=env,
        inherit_cgstudio=False,
        start_timeout_s=60,
        **options,
    )


def demo_serve_args(qwen_path: Path, gemma3_path: Path) -> list[str]:
    return ["-m", f"{QWEN}={qwen_path}", "-m", f"{GEMMA3}={gemma3_path}", "--ctx-size", "2048"]


@pytest.fixture(scope="session")
def studio(qwen_path: Path, gemma3_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """``cgstudio serve`` with both demo models, an API key and a 2048-token context."""
    args = [*demo_serve_args(qwen_path, gemma3_path), "--api-key", API_KEY, "--keep-alive", "-1"]
    with serve_process(tmp_path_factory.mktemp("studio-home"), args) as server:
        yield Studio(server.url, API_KEY, server.log)


@pytest.fixture
def own_server(qwen_path: Path, gemma3_path: Path, tmp_path: Path) -> Iterator[ServeProcess]:
    """A fresh ``cgstudio serve`` (no model loaded yet) for this test alone; it may stop and restart it."""
    args = [*demo_serve_args(qwen_path, gemma3_path), "--api-key", API_KEY]
    with serve_process(tmp_path, args) as server:
        yield server


@pytest.fixture
def slow_prefill_server(qwen_path: Path, gemma3_path: Path, tmp_path: Path) -> Iterator[ServeProcess]:
    """Like ``own_server``, but each prompt's evaluation takes ``PREFILL_DELAY_S`` seconds longer
    (slow_prefill_serve.py), so the studio's "Evaluating prompt" phase lasts long enough to see."""
    args = [*demo_serve_args(qwen_path, gemma3_path), "--api-key", API_KEY]
    program = [sys.executable, str(SLOW_PREFILL_SERVE)]
    env = {"SLOW_PREFILL_S": str(PREFILL_DELAY_S)}
    with serve_process(tmp_path, args, env, program=program) as server:
        yield server


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
    """``open_studio(key=True, width=1440, height=900, url=None, scheme="dark", max_tokens=MAX_TOKENS,
    before_load=None)``: a fresh page on the studio (``url``: another server's; ``scheme``: the
    prefers-color-scheme the browser reports; ``before_load(page)`` runs before the page opens, to
    set up routes).

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
        before_load: Callable[[Any], None] | None = None,
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
        if before_load is not None:
            before_load(page)
        page.goto((url or studio.url) + "/")
        return page

    yield factory
    for ctx in contexts:
        ctx.close()
    assert not errors, f"uncaught errors on the page: {errors}"
