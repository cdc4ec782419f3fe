"""Server test fixtures (helpers live in server_testing.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_testing import API_KEY, Live, LiveFactory, TestEngine, isolated_settings

from cgstudio.core.engine import Engine
from cgstudio.core.settings import Settings
from cgstudio.server import ServerSettings, create_app
from cgstudio.server.config import ModelSpec
from cgstudio.testing.loopback import serve_app


@pytest.fixture(scope="session")
def live_server() -> LiveFactory:
    """``with live_server({"alias": path}, n_ctx=..., n_parallel=..., delay_s=..., **ServerSettings fields)
    as live:``"""

    @contextlib.contextmanager
    def start(
        models: dict[str, Path],
        *,
        n_ctx: int = 1024,
        n_parallel: int = 1,
        delay_s: float | None = None,
        fail: BaseException | None = None,
        **config: Any,
    ) -> Iterator[Live]:
        from cgstudio.engine.llamacpp import LlamaCppEngine

        def loader(path: Path, settings: Settings) -> Engine:
            return TestEngine(LlamaCppEngine(path, settings.load), delay_s=delay_s, fail=fail)

        cfg = ServerSettings(
            models=[ModelSpec(alias=a, path=p) for a, p in models.items()],
            settings=isolated_settings(n_ctx=n_ctx, n_threads=2, n_parallel=n_parallel),
            **config,
        )
        app = create_app(cfg, loader=loader)
        with serve_app(app, lifespan="on") as url:
            yield Live(url, app)

    return start


@pytest.fixture(scope="module")
def live(live_server: LiveFactory, synthetic: dict[str, Path]) -> Iterator[Live]:
    """The three synthetic models behind ``API_KEY``: one server per test module. A module that
    needs other models or settings defines its own ``live``."""
    with live_server(synthetic, api_key=API_KEY) as server:
        yield server


@pytest.fixture
def client(live: Live) -> Iterator[httpx.Client]:
    """An httpx client on ``live`` that sends the API key."""
    with httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def synthetic(codegemma_paths: dict[str, Path]) -> dict[str, Path]:
    """Three tiny models: pretrained FIM, instruction-tuned FIM, and pretrained without FIM."""
    return {
        "cg-pt": codegemma_paths["control"],
        "cg-it": codegemma_paths["it"],
        "gemma-nofim": codegemma_paths["nofim"],
    }
