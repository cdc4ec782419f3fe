"""Queueing, cancellation, supersede, overload, model lifecycle, config and the CLI command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_testing import API_KEY, Live, LiveFactory

from cgstudio.core.engine import Priority
from cgstudio.core.errors import SettingsError
from cgstudio.server.config import ServerSettings, parse_duration, server_settings, split_model_arg
from cgstudio.server.protocol import llamacpp
from cgstudio.server.queue import FairGate, same_document
from cgstudio.server.service import GenSpec
from cgstudio.testing.subprocess_server import ServeProcess

PREFIX = "def total(rows):\n    result = 0\n    for row in rows:\n        "


def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def settled(read: object, quiet_s: float = 0.4, timeout: float = 10.0) -> int:
    """Poll a counter until it stops changing for ``quiet_s``; return its value."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()  # type: ignore[operator]
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = read()  # type: ignore[operator]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return int(now)
    raise AssertionError("the counter kept growing")


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, object]]:
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line[6:])


@pytest.fixture(scope="module")
def slow(live_server: LiveFactory, synthetic: dict[str, Path]) -> Iterator[Live]:
    """One FIM model whose decoding is scripted at 20 ms per token."""
    with live_server({"cg-pt": synthetic["cg-pt"]}, delay_s=0.02, max_queue=1) as live:
        httpx.post(live.url + "/v1/completions", json=fim_body(max_tokens=1), timeout=30).raise_for_status()
        yield live


def generated(live: Live) -> int:
    live.settled()
    return int(live.engine("cg-pt").counters.generated_tokens)


def fim_body(prefix: str = PREFIX, max_tokens: int = 2000, **extra: object) -> dict[str, object]:
    return {"prompt": prefix, "suffix": "\n    return result\n", "max_tokens": max_tokens, **extra}


# -- pure units -------------------------------------------------------------------------------------
def test_fair_gate_serves_clients_round_robin() -> None:
    async def scenario() -> list[str]:
        gate = FairGate(1)
        assert gate.enqueue("a").result() is True  # a free slot is granted at once
        waiting = [(c, gate.enqueue(c)) for c in ("a", "a", "a", "b", "c", "d")]
        gate.withdraw(waiting[5][1])  # d gave up while waiting
        order = []
        for _ in range(5):
            gate.release()
            granted = [c for c, f in waiting if f.done() and f.result()]
            assert len(granted) == 1
            order += granted
            waiting = [(c, f) for c, f in waiting if not f.done()]
        gate.release()
        assert gate.free == 1 and gate.n_waiting == 0
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c", "a", "a"]


def test_fair_gate_admits_editor_keystrokes_before_queued_chat() -> None:
    async def scenario() -> list[str]:
        gate = FairGate(1)
        assert gate.enqueue("chat", Priority.NORMAL).result() is True
        waiting = [
            ("chat-2", gate.enqueue("a", Priority.NORMAL)),
            ("idle", gate.enqueue("a", Priority.IDLE)),
            ("chat-3", gate.enqueue("b", Priority.NORMAL)),
            ("fim", gate.enqueue("c", Priority.EDITOR)),
        ]
        order = []
        for _ in range(4):
            gate.release()
            order += [name for name, f in waiting if f.done() and f.result()]
            waiting = [(name, f) for name, f in waiting if not f.done()]
        return order

    # The keystroke that came last is served first; chat round-robin; idle work last.
    assert asyncio.run(scenario()) == ["fim", "chat-2", "chat-3", "idle"]


def test_request_priorities() -> None:
    assert GenSpec("infill", prompt="x").admission_priority == Priority.EDITOR
    assert GenSpec("fim", prompt="x").admission_priority == Priority.EDITOR
    assert GenSpec("chat", messages=[]).admission_priority == Priority.NORMAL
    # A raw prompt that holds a FIM template is a keystroke too.
    raw = GenSpec("raw", prompt="<|fim_prefix|>def f():\n    re<|fim_suffix|>\n<|fim_middle|>")
    assert raw.admission_priority == Priority.EDITOR
    # A pre-warm fills the cache ahead of time: it waits with chat, and runs at chat's priority.
    prewarm = GenSpec("infill", prompt="", prewarm=True)
    assert prewarm.admission_priority == Priority.NORMAL
    assert prewarm.generation().priority_class == Priority.NORMAL


def test_same_document_rules() -> None:
    def fim(prefix: str, path: str | None = None) -> GenSpec:
        return GenSpec("fim", prompt=prefix, suffix="\n", path=path)

    base = "import os\n\ndef f(x):\n    ret"
    assert same_document(fim(base), fim(base + "urn"))  # typing extends it
    assert same_document(fim(base), fim(base[:-2]))  # backspace
    assert same_document(fim(base), fim(base + "urn x\n    "))  # Enter
    assert same_document(fim(base), fim("import os\n\ndef f(x):\n    pass"))  # the last line edited
    assert not same_document(fim(base), fim(base))  # an identical request is a retry
    assert not same_document(fim(base), fim("import sys\n\ndef f(x):\n    ret"))  # an edit above
    assert not same_document(fim(base, "a.py"), fim(base + "u", "b.py"))  # another file
    raw_a = GenSpec("raw", prompt="<|fim_prefix|>def f():\n    re<|fim_suffix|>\n<|fim_middle|>")
    raw_b = GenSpec("raw", prompt="<|fim_prefix|>def f():\n    ret<|fim_suffix|>\n<|fim_middle|>")
    assert same_document(raw_a, raw_b)  # rendered FIM prompts are compared on their prefix part
    assert not GenSpec("chat", messages=[]).supersedable


def test_line_limits_n_indent_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    lim = llamacpp.LineLimits(n_indent=4, t_max_predict_ms=None)
    out = lim.feed("x = 1\n    y = 2\n") + lim.feed("\n") + lim.feed("  ") + lim.feed("z = 3\n")
    assert lim.stopped and out == "x = 1\n    y = 2\n\n  " and lim.text == out
    assert lim.feed("more") == ""
    # The clock is read at the first piece and on each piece that holds a new line.
    clock = iter([0.0, 0.1, 0.9])
    monkeypatch.setattr(llamacpp.time, "perf_counter", lambda: next(clock))
    lim = llamacpp.LineLimits(n_indent=0, t_max_predict_ms=500)
    lim.feed("a")
    lim.feed("b\n")
    assert not lim.stopped  # 0.1 s after the first token
    lim.feed("c")
    lim.feed("d")
    assert not lim.stopped  # past 0.5 s, but llama-server stops only on a token with a new line
    assert lim.feed("e\n") == "e\n"
    assert lim.stopped and lim.text == "ab\ncde\n"  # the text ends with the line
    assert lim.feed("f") == ""


def test_select_fields_lifts_nested() -> None:
    doc = {"content": "x", "timings": {"prompt_n": 3}, "stop": True}
    assert llamacpp.select_fields(doc, ["content", "timings/prompt_n", "nope/x"]) == {
        "content": "x",
        "timings/prompt_n": 3,
    }


def test_config_rules() -> None:
    with pytest.raises(SettingsError, match=r"refusing to bind 0\.0\.0\.0 without an API key"):
        server_settings(host="0.0.0.0")
    assert ServerSettings(host="0.0.0.0", api_key="k").host == "0.0.0.0"
    assert ServerSettings(host="::1").host == "::1"
    with pytest.raises(SettingsError, match="reserved"):
        server_settings(models=[{"alias": "default", "path": "/x.gguf"}])
    assert parse_duration("5m") == 300 and parse_duration("30s") == 30 and parse_duration(-1) is None
    assert parse_duration("250ms") == 0.25 and parse_duration(None) == 300 and parse_duration("0") == 0
    with pytest.raises(SettingsError):
        parse_duration("soon")
    assert split_model_arg("fast=models/a.gguf") == ("fast", "models/a.gguf")
    assert split_model_arg("models/a=b.gguf") == (None, "models/a=b.gguf")
    assert split_model_arg("qwen2.5-coder-0.5b") == (None, "qwen2.5-coder-0.5b")


# -- cancellation -----------------------------------------------------------------------------------
def test_stream_disconnect_stops_decoding(slow: Live) -> None:
    start = generated(slow)
    with (
        httpx.Client(base_url=slow.url, timeout=30) as c,
        c.stream("POST", "/v1/completions", json=fim_body(stream=True)) as r,
    ):
        events = sse_events(r.iter_lines())
        for _ in range(3):
            next(events)
    at_close = generated(slow)
    final = settled(lambda: generated(slow))
    assert final - at_close <= 2  # stopped within a decode step or two of the disconnect
    assert final - start < 100  # far below max_tokens (2000)
    text = httpx.get(slow.url + "/metrics").text
    assert 'cgstudio_cancellations_total{reason="disconnect"}' in text


def test_non_streaming_disconnect_stops_decoding(slow: Live) -> None:
    start = generated(slow)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(slow.url + "/v1/completions", json=fim_body(), timeout=0.5)
    final = settled(lambda: generated(slow))
    assert final - start < 100


def _stream_then_supersede(
    live: Live, first: dict[str, object], second: dict[str, object], h1: dict[str, str], h2: dict[str, str]
) -> tuple[list[dict[str, object]], int]:
    with (
        httpx.Client(base_url=live.url, timeout=30) as c,
        c.stream("POST", "/v1/completions", json=first, headers=h1) as r,
    ):
        events = sse_events(r.iter_lines())
        seen = [next(events)]
        status = httpx.post(live.url + "/v1/completions", json=second, headers=h2, timeout=30).status_code
        seen += list(events)
    return seen, status


def _warnings(events: list[dict[str, object]]) -> set[str]:
    return {w["code"] for e in events for w in e.get("warnings", [])}  # type: ignore[union-attr, index]


def test_supersede_by_client_id(slow: Live) -> None:
    first = fim_body(stream=True, max_tokens=300)
    second = fim_body("import sys\n", max_tokens=3)
    events, status = _stream_then_supersede(
        slow, first, second, {"X-Client-Id": "ed1"}, {"X-Client-Id": "ed1"}
    )
    assert status == 200 and "superseded" in _warnings(events)
    assert len([e for e in events if e["choices"] and e["choices"][0]["text"]]) < 100  # type: ignore[index]


def test_two_editors_never_cancel_each_other(slow: Live) -> None:
    first = fim_body(stream=True, max_tokens=30)
    events, status = _stream_then_supersede(
        slow, first, fim_body(PREFIX + "res", max_tokens=3), {"X-Client-Id": "ed1"}, {"X-Client-Id": "ed2"}
    )
    assert status == 200 and "superseded" not in _warnings(events)
    assert events[-1]["choices"][0]["finish_reason"] == "length"  # type: ignore[index]


def test_supersede_same_document_without_client_id(slow: Live) -> None:
    events, _ = _stream_then_supersede(
        slow,
        fim_body(stream=True, max_tokens=300, filepath="a.py"),
        fim_body(PREFIX + "res", max_tokens=3, filepath="a.py"),
        {},
        {},
    )
    assert "superseded" in _warnings(events)
    events, _ = _stream_then_supersede(
        slow,
        fim_body(stream=True, max_tokens=30, filepath="a.py"),
        fim_body(PREFIX + "res", max_tokens=3, filepath="b.py"),
        {},
        {},
    )
    assert "superseded" not in _warnings(events)


# -- overload ---------------------------------------------------------------------------------------
def test_full_queue_is_503_with_retry_after(slow: Live) -> None:
    results: list[int] = []
    with (
        httpx.Client(base_url=slow.url, timeout=30) as c,
        c.stream("POST", "/v1/completions", json=fim_body(stream=True), headers={"X-Client-Id": "a"}) as r,
    ):
        events = sse_events(r.iter_lines())
        next(events)  # running: the only slot is taken
        queued = threading.Thread(
            target=lambda: results.append(
                httpx.post(
                    slow.url + "/v1/completions",
                    json=fim_body("x = 1\n", max_tokens=2),
                    timeout=30,
                    headers={"X-Client-Id": "b"},
                ).status_code
            )
        )
        queued.start()
        wait_for(lambda: httpx.get(slow.url + "/health").json()["queue_depth"] == 1)
        over = httpx.post(
            slow.url + "/v1/completions", json=fim_body("y = 2\n", max_tokens=2), headers={"X-Client-Id": "c"}
        )
        assert over.status_code == 503 and over.headers["Retry-After"] == "2"
        assert over.json()["error"]["code"] == "overloaded"
    queued.join(30)
    assert results == [200]


# -- errors without traces --------------------------------------------------------------------------
def test_internal_errors_are_500_without_details(
    live_server: LiveFactory, synthetic: dict[str, Path]
) -> None:
    with live_server({"cg-pt": synthetic["cg-pt"]}, fail=RuntimeError("secret internal detail")) as live:
        for stream in (False, True):
            r = httpx.post(
                live.url + "/v1/completions", json=fim_body(max_tokens=2, stream=stream), timeout=30
            )
            assert r.status_code == 500
            assert r.json()["error"] == {
                "message": "internal server error; the server log has the details",
                "type": "server_error",
                "code": "internal_error",
            }
            assert "secret" not in r.text and "Traceback" not in r.text


# -- lifecycle --------------------------------------------------------------------------------------
def test_lazy_load_and_keep_alive_unload(live_server: LiveFactory, synthetic: dict[str, Path]) -> None:
    with live_server({"cg-pt": synthetic["cg-pt"]}, keep_alive_s=0.3) as live:
        assert httpx.get(live.url + "/api/ps").json()["models"] == []  # nothing loads before first use
        httpx.post(live.url + "/v1/completions", json=fim_body(max_tokens=1)).raise_for_status()
        ps = httpx.get(live.url + "/api/ps").json()["models"]
        assert [m["name"] for m in ps] == ["cg-pt"] and ps[0]["context_length"] == 1024
        wait_for(lambda: httpx.get(live.url + "/api/ps").json()["models"] == [], timeout=5)
        assert httpx.post(live.url + "/v1/completions", json=fim_body(max_tokens=1)).status_code == 200


def test_ollama_keep_alive_and_load_requests(live_server: LiveFactory, synthetic: dict[str, Path]) -> None:
    with live_server({"cg-pt": synthetic["cg-pt"]}, keep_alive_s=None) as live:
        r = httpx.post(live.url + "/api/generate", json={"model": "cg-pt"}).json()
        assert r["done_reason"] == "load" and httpx.get(live.url + "/api/ps").json()["models"]
        httpx.post(
            live.url + "/api/generate",
            json={
                "model": "cg-pt",
                "prompt": "a",
                "suffix": "b",
                "stream": False,
                "keep_alive": 0,
                "options": {"num_predict": 1},
            },
        ).raise_for_status()
        wait_for(lambda: httpx.get(live.url + "/api/ps").json()["models"] == [], timeout=5)


def test_admin_reload(live_server: LiveFactory, synthetic: dict[str, Path]) -> None:
    with live_server({"cg-pt": synthetic["cg-pt"]}, api_key=API_KEY, admin_key="admin-key") as live:
        user, admin = {"X-API-Key": API_KEY}, {"Authorization": "Bearer admin-key"}
        body = {"model": "cg-pt", "load": {"n_ctx": 512}}
        assert httpx.post(live.url + "/admin/reload", json=body, headers=user).status_code == 401
        r = httpx.post(live.url + "/admin/reload", json=body, headers=admin, timeout=30)
        assert r.status_code == 200 and r.json()["n_ctx"] == 512 and r.json()["load"]["n_ctx"] == 512
        models = httpx.get(live.url + "/admin/models", headers=admin).json()["models"]
        assert models[0]["n_ctx"] == 512 and models[0]["loaded"]
        bad = httpx.post(live.url + "/admin/reload", json={"load": {"bogus": 1}}, headers=admin)
        assert bad.status_code == 400 and "bogus" in bad.json()["error"]["message"]
        r = httpx.post(live.url + "/v1/completions", json=fim_body(max_tokens=1), headers=user, timeout=30)
        assert r.status_code == 200


def test_cors_only_when_configured(live_server: LiveFactory, synthetic: dict[str, Path]) -> None:
    preflight = {
        "Origin": "http://localhost:5173",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    with live_server({"cg-pt": synthetic["cg-pt"]}, cors_origins=["http://localhost:5173"]) as live:
        r = httpx.options(live.url + "/v1/completions", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:5173"
    with live_server({"cg-pt": synthetic["cg-pt"]}) as live:
        r = httpx.get(live.url + "/v1/models", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in r.headers


# -- the CLI command ----------------------------------------------------------------------------------
def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cgstudio.cli.main", *args], capture_output=True, text=True, timeout=timeout
    )


def test_cli_refuses_public_bind_without_key(synthetic: dict[str, Path]) -> None:
    r = _cli("serve", "--host", "0.0.0.0", "-m", str(synthetic["cg-pt"]))
    assert r.returncode == 2 and "refusing to bind 0.0.0.0 without an API key" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_serve_starts_and_answers(synthetic: dict[str, Path], tmp_path: Path) -> None:
    models = ["-m", f"pt={synthetic['cg-pt']}", "-m", str(synthetic["cg-it"])]
    args = [*models, "-c", "512", "--log-level", "warning"]
    env = {"CGSTUDIO_PROFILE": str(tmp_path / "none.toml")}
    with ServeProcess(args, log=tmp_path / "serve.log", env=env, start_timeout_s=60) as server:
        ids = [m["id"] for m in httpx.get(server.url + "/v1/models").json()["data"]]
        assert ids == ["pt", "codegemma-7b-it"]
        assert server.process.poll() is None
