"""Issue 12 at the HTTP edge: previews wait in the same queue as generation, request bounds are
400s that name the limit, and /infill runs the one CodeModel path (protected ids never leak)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_testing import Live, LiveFactory

from cgstudio.generation.pipeline import RunContext, run
from cgstudio.generation.request import GenerationRequest
from cgstudio.generation.stops import MAX_STOP_CHARS, MAX_STOP_STRINGS
from cgstudio.prompts.chat import MAX_CHAT_MESSAGES

PREFIX = "def total(rows):\n    result = 0\n    for row in rows:\n        "
PREVIEWS: list[tuple[str, dict[str, object]]] = [
    ("/v1/prompt", {"prompt": "x = 1\n", "suffix": "\n"}),
    ("/cgstudio/prompt", {"messages": [{"role": "user", "content": "hi"}], "model": "cg-it"}),
    ("/tokenize", {"content": "def f():"}),
    ("/detokenize", {"tokens": [2, 3, 4]}),
    ("/apply-template", {"messages": [{"role": "user", "content": "hi"}], "model": "cg-it"}),
]


def post_when_free(url: str, body: dict[str, object], timeout: float = 20.0) -> httpx.Response:
    """POST, retrying while the one slot is still being released by a cancelled stream."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.post(url, json=body, timeout=60)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


@pytest.fixture(scope="module")
def no_queue(live_server: LiveFactory, synthetic: dict[str, Path]) -> Iterator[Live]:
    """One slot, no waiting room, decoding scripted at 20 ms per token."""
    models = {"cg-pt": synthetic["cg-pt"], "cg-it": synthetic["cg-it"]}
    with live_server(models, delay_s=0.02, max_queue=0) as live:
        for alias in models:  # load both before the test holds the slot
            httpx.post(
                live.url + "/v1/completions",
                json={"model": alias, "prompt": "x", "max_tokens": 1},
                timeout=60,
            ).raise_for_status()
        yield live


def test_previews_get_503_with_retry_after_while_the_only_slot_is_busy(no_queue: Live) -> None:
    body = {"prompt": PREFIX, "suffix": "\n", "max_tokens": 2000, "stream": True, "model": "cg-pt"}
    with (
        httpx.Client(base_url=no_queue.url, timeout=30) as c,
        c.stream("POST", "/v1/completions", json=body) as r,
    ):
        lines = r.iter_lines()
        next(line for line in lines if line.startswith("data: "))  # running: the slot is taken
        for path, preview in PREVIEWS:
            over = c.post(path, json=preview)
            assert over.status_code == 503, (path, over.text)
            assert over.headers["Retry-After"] == "2"
            assert over.json()["error"]["code"] == "overloaded"
    # The slot is free again (the stream was closed): every preview is served.
    for path, preview in PREVIEWS:
        ok = post_when_free(no_queue.url + path, preview)
        assert ok.status_code == 200, (path, ok.text)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/completions", {"prompt": "x", "max_tokens": 1}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "model": "cg-it"}),
        ("/api/generate", {"prompt": "x", "stream": False}),
        ("/completion", {"prompt": "x", "n_predict": 1}),
        ("/infill", {"input_prefix": "x", "n_predict": 1}),
        ("/v1/prompt", {"prompt": "x"}),
    ],
)
def test_stop_bounds_are_400_naming_the_limit_in_every_dialect(
    no_queue: Live, path: str, body: dict[str, object]
) -> None:
    too_many = [f"s{i}" for i in range(MAX_STOP_STRINGS + 1)]
    too_long = "x" * (MAX_STOP_CHARS + 1)
    for stop, limit in ((too_many, str(MAX_STOP_STRINGS)), (too_long, str(MAX_STOP_CHARS))):
        doc = {**body, "options": {"stop": stop}} if path == "/api/generate" else {**body, "stop": stop}
        r = post_when_free(no_queue.url + path, doc)
        assert r.status_code == 400, r.text
        error = r.json()["error"]  # Ollama's routes answer {"error": "message"}
        assert f"limit is {limit}" in (error if path.startswith("/api/") else error["message"])


def test_message_count_bound_is_400(no_queue: Live) -> None:
    messages = [{"role": "user", "content": "hi"}]
    for i in range(MAX_CHAT_MESSAGES // 2 + 1):
        messages += [{"role": "assistant", "content": f"a{i}"}, {"role": "user", "content": f"u{i}"}]
    r = post_when_free(no_queue.url + "/v1/chat/completions", {"model": "cg-it", "messages": messages})
    assert r.status_code == 400, r.text
    assert f"limit is {MAX_CHAT_MESSAGES:,}" in r.json()["error"]["message"]


# -- /infill and /v1/completions share one run path -----------------------------------------------
@pytest.fixture(scope="module")
def user_defined(live_server: LiveFactory, codegemma_paths: dict[str, Path]) -> Iterator[Live]:
    """A GGUF that types its markup USER_DEFINED, with decoding scripted to emit <start_of_turn>."""
    with live_server({"cg-ud": codegemma_paths["user_defined"]}, delay_s=0.001) as live:
        httpx.post(
            live.url + "/v1/completions", json={"prompt": "x", "max_tokens": 1}, timeout=60
        ).raise_for_status()
        engine = live.engine("cg-ud")
        marker = engine.info.special_tokens["<start_of_turn>"]
        engine._script = [marker, *engine._script[:8], marker, *engine._script[8:]]
        yield live


def test_the_scripted_marker_would_leak_without_protected_ids(user_defined: Live) -> None:
    """Proves the next test can fail: the unprotected pipeline shows the marker's text."""
    model = user_defined.app.state.registry.entries["cg-ud"].model
    prompt, _ = model.prompt(GenerationRequest("fim", "def f():\n    ", "\n", sampling={"max_tokens": 16}))
    chunks = list(
        run(
            model.engine,
            prompt,
            model.sampling({"max_tokens": 16}),
            model.guards(None),
            RunContext("codegemma"),
        )
    )
    assert chunks[-1].result is not None
    assert "<start_of_turn>" in chunks[-1].result.text


def test_infill_never_leaks_protected_tokens(user_defined: Live) -> None:
    guards = {"fim_stop_at_suffix": False, "fim_single_line": False, "fim_block_end": False}
    texts = []
    infill = httpx.post(
        user_defined.url + "/infill",
        json={
            "input_prefix": "def f():\n",
            "prompt": "    ",
            "input_suffix": "\n",
            "n_predict": 16,
            "guards": guards,
        },
        timeout=60,
    )
    infill.raise_for_status()
    texts.append(infill.json()["content"])
    with httpx.stream(
        "POST",
        user_defined.url + "/infill",
        json={
            "input_prefix": "def f():\n",
            "input_suffix": "\n",
            "n_predict": 16,
            "stream": True,
            "guards": guards,
        },
        timeout=60,
    ) as r:
        texts.append(
            "".join(
                json.loads(line[6:]).get("content", "")
                for line in r.iter_lines()
                if line.startswith("data: ")
            )
        )
    completion = httpx.post(
        user_defined.url + "/v1/completions",
        json={"prompt": "def f():\n    ", "suffix": "\n", "max_tokens": 16, "guards": guards},
        timeout=60,
    )
    completion.raise_for_status()
    texts.append(completion.json()["choices"][0]["text"])
    for text in texts:
        assert text, "the scripted stream produced no text"
        assert "<start_of_turn>" not in text
