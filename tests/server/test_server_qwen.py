"""Real clients against Qwen2.5-Coder-0.5B: the openai and ollama packages, httpx for /infill."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from server_testing import Live, LiveFactory

pytestmark = pytest.mark.slow

PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\n\nprint(add(1, 2))\n"


@pytest.fixture(scope="module")
def qwen(live_server: LiveFactory, qwen_path: Path) -> Iterator[Live]:
    with live_server({"qwen": qwen_path}, n_ctx=2048) as live:
        yield live


@pytest.fixture(scope="module")
def oai(qwen: Live) -> openai.OpenAI:
    return openai.OpenAI(base_url=qwen.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_openai_models(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == ["qwen"]


def test_openai_completion_with_suffix_is_fim(oai: openai.OpenAI) -> None:
    r = oai.completions.create(model="qwen", prompt=PREFIX, suffix=SUFFIX, max_tokens=16, temperature=0)
    text = r.choices[0].text
    assert "return a + b" in text and "<|" not in text
    assert r.usage is not None and r.usage.completion_tokens >= 2
    extra = r.model_extra or {}
    assert extra["timings"]["thought_for_s"] > 0 and extra["timings"]["generation_tokens_per_s"] is not None


def test_openai_streamed_chat_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Write a one-line Python hello world."}],
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and "<|im_end|>" not in text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 16
    assert chunks[-1].model == "qwen"


def test_ollama_generate_with_suffix_chat_and_list(qwen: Live) -> None:
    c = ollama.Client(host=qwen.url, timeout=300)
    assert [m.model for m in c.list().models] == ["qwen"]
    r = c.generate(model="qwen", prompt=PREFIX, suffix=SUFFIX, options={"temperature": 0, "num_predict": 16})
    assert "return a + b" in (r.response or "")
    assert r.done and r.eval_count and r.prompt_eval_count and r.total_duration and r.eval_duration
    chat = c.chat(
        model="qwen",
        messages=[{"role": "user", "content": "Say hi in five words."}],
        options={"temperature": 0, "num_predict": 12},
    )
    assert chat.message.content and chat.done
    show = c.show("qwen")
    assert ".Suffix" in (show.template or "") and "insert" in (show.capabilities or [])


def test_llamacpp_infill(qwen: Live) -> None:
    r = httpx.post(
        qwen.url + "/infill",
        timeout=300,
        json={
            "input_prefix": "def add(a, b):\n",
            "prompt": "    return",
            "input_suffix": SUFFIX,
            "input_extra": [{"filename": "util.py", "text": "def sub(a, b):\n    return a - b\n"}],
            "n_predict": 8,
            "temperature": 0,
        },
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["content"].replace(" ", "").startswith("a+b"), doc["content"]
    assert doc["timings"]["predicted_n"] >= 1 and doc["tokens_evaluated"] > 10


def test_disconnect_stops_the_engine(qwen: Live) -> None:
    counters = qwen.engine("qwen").counters
    start = counters.generated_tokens
    body = {
        "model": "qwen",
        "stream": True,
        "max_tokens": 400,
        "temperature": 0.7,
        "seed": 1,
        "messages": [
            {"role": "user", "content": "Write a long tutorial on Python decorators with many examples."}
        ],
    }
    with httpx.Client(timeout=300) as c, c.stream("POST", qwen.url + "/v1/chat/completions", json=body) as r:
        lines = r.iter_lines()
        content = 0
        for line in lines:
            if '"content":"' in line and '"content":""' not in line:
                content += 1
                if content == 3:
                    break
    at_close = counters.generated_tokens
    deadline, last, since = time.monotonic() + 30, at_close, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 1.5:
        time.sleep(0.1)
        if counters.generated_tokens != last:
            last, since = counters.generated_tokens, time.monotonic()
    assert counters.generated_tokens == last  # it stopped growing
    assert last - at_close <= 3  # within a decode step or two of the disconnect
    assert last - start < 50  # far below max_tokens (400)
