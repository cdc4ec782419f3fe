"""What the studio reads before a reply's first token: /health's loading flag and /cgstudio/progress.

The engine is held at two gates (the model load, the prompt evaluation), so each phase is
observed while it lasts, without timing."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from server_testing import TestEngine, isolated_settings

from cgstudio.core.engine import DecodeRequest, Engine, TokenStream
from cgstudio.core.settings import Settings
from cgstudio.server import ServerSettings, create_app
from cgstudio.server.config import ModelSpec
from cgstudio.testing.loopback import serve_app

GATE_S = 30.0


class HeldEngine(TestEngine):
    """Streams only once ``evaluate`` is set: the request stays in its "evaluating" phase until then."""

    __test__ = False

    def __init__(self, inner: Engine, evaluate: threading.Event) -> None:
        super().__init__(inner)
        self.evaluate = evaluate

    def stream(self, request: DecodeRequest) -> TokenStream:
        assert self.evaluate.wait(GATE_S)
        return super().stream(request)


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@contextlib.contextmanager
def _server(path: Path, load: threading.Event, evaluate: threading.Event) -> Iterator[str]:
    from cgstudio.engine.llamacpp import LlamaCppEngine

    def loader(p: Path, settings: Settings) -> Engine:
        assert load.wait(GATE_S)
        return HeldEngine(LlamaCppEngine(p, settings.load), evaluate)

    cfg = ServerSettings(
        models=[ModelSpec(alias="cg-it", path=path)], settings=isolated_settings(n_ctx=512, n_threads=2)
    )
    with serve_app(create_app(cfg, loader=loader), lifespan="on") as url:
        yield url


def test_progress_shows_loading_then_evaluating_to_its_own_client_only(
    codegemma_paths: dict[str, Path],
) -> None:
    load, evaluate = threading.Event(), threading.Event()
    with _server(codegemma_paths["it"], load, evaluate) as url:
        mine, other = {"X-Client-Id": "studio-a"}, {"X-Client-Id": "studio-b"}

        def progress(headers: dict[str, str]) -> list[dict[str, Any]]:
            r = httpx.get(url + "/cgstudio/progress", headers=headers, timeout=5)
            assert r.status_code == 200
            return r.json()["jobs"]

        def health_model() -> dict[str, Any]:
            return httpx.get(url + "/health", timeout=5).json()["models"][0]

        assert progress(mine) == []
        assert health_model() == {"name": "cg-it", "loaded": False, "loading": False}
        answers: list[httpx.Response] = []
        body = {"model": "cg-it", "max_tokens": 2, "messages": [{"role": "user", "content": "Hi"}]}
        sender = threading.Thread(
            target=lambda: answers.append(
                httpx.post(url + "/v1/chat/completions", json=body, headers=mine, timeout=60)
            )
        )
        sender.start()
        try:
            job = wait_for(lambda: next(iter(progress(mine)), None))
            assert job["model"] == "cg-it" and job["phase"] in ("queued", "loading")
            wait_for(lambda: progress(mine)[0]["phase"] == "loading")
            assert health_model()["loading"] is True
            assert progress(other) == []  # another client sees nothing of it

            load.set()
            job = wait_for(lambda: next((j for j in progress(mine) if j["phase"] == "evaluating"), None))
            wait_for(lambda: progress(mine)[0]["prompt_tokens"])
            job = progress(mine)[0]
            assert job["phase"] == "evaluating" and job["prompt_tokens"] > 5
            assert health_model() == {"name": "cg-it", "loaded": True, "loading": False}
        finally:
            load.set()
            evaluate.set()
            sender.join(60)
        assert answers and answers[0].status_code == 200, answers
        usage = answers[0].json()["usage"]
        assert usage["prompt_tokens"] == job["prompt_tokens"]  # the count shown is the prompt evaluated
        wait_for(lambda: progress(mine) == [])
