"""cgstudio in front of a real, separate OpenAI-compatible engine: llama-cpp-python's llama_cpp.server
with Qwen2.5-Coder-0.5B on loopback. Real clients (openai, ollama, httpx); no mocks."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from conftest import Front, Upstream, free_port, front

pytestmark = pytest.mark.slow

PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\n\nprint(add(1, 2))\n"
LOOP = "x = 1\nx = 1\nx = 1\nx = 1\n"  # greedy decoding continues this forever


@pytest.fixture(scope="module")
def served(upstream: Upstream, qwen_path: Path) -> Iterator[Front]:
    with front(upstream.url, tokenizer=qwen_path) as f:
        yield f


@pytest.fixture(scope="module")
def oai(served: Front) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def test_fim_through_openai_suffix(oai: openai.OpenAI, served: Front) -> None:
    r = oai.completions.create(model="remote", prompt=PREFIX, suffix=SUFFIX, max_tokens=16, temperature=0)
    text = r.choices[0].text
    assert "return a + b" in text and "<|" not in text
    assert r.usage is not None and r.usage.completion_tokens >= 2
    counters = served.engine().counters
    assert counters.upstream_requests >= 1 and counters.generated_tokens >= 2


def test_fim_through_ollama_suffix(served: Front) -> None:
    r = ollama.Client(host=served.url, timeout=300).generate(
        model="remote", prompt=PREFIX, suffix=SUFFIX, options={"temperature": 0, "num_predict": 16}
    )
    assert "return a + b" in r.response and r.done


def test_streamed_chat(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="remote",
        messages=[{"role": "user", "content": "Write a Python function add(a, b) that returns a + b."}],
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 3 and "add" in "".join(pieces)


def test_guard_stops_a_degenerate_upstream_stream(served: Front) -> None:
    before = served.engine().counters.aborted_streams
    r = httpx.post(
        served.url + "/v1/completions",
        json={"model": "remote", "prompt": LOOP, "max_tokens": 64, "temperature": 0},
        timeout=300,
    )
    doc = r.json()
    assert r.status_code == 200, doc
    assert doc["timings"]["finish_reason"] == "repetition"
    assert [w["code"] for w in doc["warnings"]] == ["repetition"]
    assert doc["usage"]["completion_tokens"] < 64
    assert served.engine().counters.aborted_streams == before + 1  # the front closed the upstream stream


def test_special_token_text_is_refused_for_a_text_upstream(served: Front) -> None:
    r = httpx.post(
        served.url + "/v1/completions",
        json={"model": "remote", "prompt": 'marker = "<|fim_suffix|>"\n', "suffix": "\n", "max_tokens": 4},
        timeout=60,
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_input"
    assert err["message"].startswith(
        "this upstream takes text prompts; the input contains special-token text (<|fim_suffix|>) that it "
        "would parse as a control token; use a vLLM upstream (token-id prompts) or remove it"
    )


def test_disconnect_aborts_the_upstream_request(served: Front, upstream: Upstream) -> None:
    engine_counters = served.engine().counters
    before = engine_counters.aborted_streams
    max_tokens = 1500
    body = {
        "model": "remote",
        "prompt": LOOP,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "guards": {"repetition": False},
    }
    times: list[float] = []
    with httpx.stream("POST", served.url + "/v1/completions", json=body, timeout=300) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:") and '"text"' in line:
                times.append(time.perf_counter())
                if len(times) == 12:
                    break  # leaving the block closes the connection: the client is gone
    t_gone = time.perf_counter()
    rate = (len(times) - 1) / (times[-1] - times[0])  # upstream tokens per second, as seen here
    remaining_s = (max_tokens - len(times)) / rate
    deadline = t_gone + min(30.0, remaining_s / 2)
    while engine_counters.aborted_streams == before and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert engine_counters.aborted_streams == before + 1, "cgstudio did not close the upstream stream"
    # llama_cpp.server serves one request at a time: it answers a new one only once the first stopped.
    r2 = httpx.post(
        upstream.url + "/v1/completions",
        json={"prompt": "def", "max_tokens": 1, "temperature": 0},
        timeout=300,
    )
    waited = time.perf_counter() - t_gone
    assert r2.status_code == 200
    assert waited < remaining_s / 2, (
        f"the upstream was busy for {waited:.1f} s (would need {remaining_s:.0f} s)"
    )
    assert "Disconnected from client" in upstream.log_text()


def test_superseding_keystroke_aborts_the_upstream_request(served: Front) -> None:
    counters = served.engine().counters
    before = counters.aborted_streams
    editor = {"X-Client-Id": "editor-1"}
    first: dict[str, object] = {"model": "remote", "prompt": LOOP, "max_tokens": 1500, "temperature": 0}
    first["stream"] = True
    second = {"model": "remote", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 8, "temperature": 0}
    first["guards"] = {"repetition": False}
    with (
        httpx.Client(base_url=served.url, headers=editor, timeout=300) as c,
        c.stream("POST", "/v1/completions", json=first) as r,
    ):
        lines = r.iter_lines()
        seen = 0
        while seen < 3:
            seen += '"text"' in next(lines)
        # The next keystroke from the same editor: the first request is cancelled and its
        # upstream stream closed, so the one-at-a-time upstream is free for the second.
        r2 = c.post("/v1/completions", json=second)
        assert r2.status_code == 200 and "return a + b" in r2.json()["choices"][0]["text"]
        rest = list(lines)
    assert any('"superseded"' in line for line in rest)
    assert counters.aborted_streams == before + 1


def test_upstream_tokenizer_counts_like_the_gguf(upstream: Upstream, served: Front) -> None:
    body = {"model": "remote", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 4, "temperature": 0}
    exact = httpx.post(served.url + "/v1/completions", json=body, timeout=300).json()
    with front(upstream.url) as f:  # no GGUF: llama_cpp.server's /extras/tokenize counts
        r = httpx.post(f.url + "/v1/completions", json=body, timeout=300).json()
        assert type(f.engine().tokenizer).__name__ == "UpstreamTokenizer"
    assert r["usage"]["prompt_tokens"] == exact["usage"]["prompt_tokens"]
    assert r["choices"][0]["text"] == exact["choices"][0]["text"] and r["warnings"] == []
    with front(upstream.url, tokenizer_mode="estimate") as f:
        r = httpx.post(f.url + "/v1/completions", json=body, timeout=300).json()
    assert [w["code"] for w in r["warnings"]] == ["token_estimate"]
    assert r["choices"][0]["text"] == exact["choices"][0]["text"]


def test_down_upstream_gives_503_and_the_front_recovers(upstream: Upstream, qwen_path: Path) -> None:
    port = free_port()
    dead = f"http://127.0.0.1:{port}"
    body = {"model": "remote", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 4, "temperature": 0}
    with front(dead) as f:  # no tokenizer: the model cannot even load
        r = httpx.post(f.url + "/v1/completions", json=body, timeout=60)
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["code"] == "upstream_unavailable"
        assert f"the upstream at {dead} is not answering" in err["message"]
        assert "start it or check --base-url" in err["message"]
        assert httpx.get(f.url + "/health", timeout=10).json()["status"] == "ok"
    with front(dead, tokenizer=qwen_path) as f:  # loads (local tokenizer); requests wait for the upstream
        for _ in range(2):
            r = httpx.post(f.url + "/v1/completions", json=body, timeout=60)
            assert r.status_code == 503 and "is not answering" in r.json()["error"]["message"]
        assert httpx.get(f.url + "/health", timeout=10).status_code == 200
        assert f.engine().counters.retries >= 2  # bounded retries before the first token
        with forward(port, int(upstream.url.rsplit(":", 1)[1])):  # the upstream comes up
            r = httpx.post(f.url + "/v1/completions", json=body, timeout=300)
            assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1


@contextlib.contextmanager
def forward(listen: int, target: int) -> Iterator[None]:
    """A TCP forwarder 127.0.0.1:listen -> 127.0.0.1:target (an upstream appearing at a URL)."""
    server = socket.create_server(("127.0.0.1", listen))
    server.settimeout(0.2)
    stop = threading.Event()

    def pipe(a: socket.socket, b: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := a.recv(65536):
                b.sendall(data)
        for s in (a, b):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            up = socket.create_connection(("127.0.0.1", target))
            threading.Thread(target=pipe, args=(client, up), daemon=True).start()
            threading.Thread(target=pipe, args=(up, client), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(2)
        server.close()
