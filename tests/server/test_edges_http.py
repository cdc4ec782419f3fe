"""HTTP edges: web pages (Host, Origin, Content-Type), bad text, slow clients, shutdown, start-up.

Servers are real uvicorn servers on loopback with the tiny synthetic CodeGemma models. Tests of
connection bounds run the app through ``cgstudio.server.listener`` (the bound sockets, the bounded
protocol and the graceful server that ``cgstudio serve`` uses); shutdown and start-up run
``cgstudio serve``'s code path in a subprocess.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from server_testing import Live, LiveFactory, TestEngine, isolated_settings

from cgstudio.core.engine import Engine
from cgstudio.core.settings import Settings
from cgstudio.server import ServerSettings, create_app
from cgstudio.server.config import ModelSpec
from cgstudio.server.errors import ListenError
from cgstudio.server.listener import GracefulServer, bind, listening_url, uvicorn_config
from cgstudio.server.middleware import BrowserPolicy
from cgstudio.testing.loopback import serve_server

HERE = Path(__file__).resolve().parent
FIM = {"prompt": "def total(rows):\n    ", "suffix": "\n    return result\n"}


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def server_5xx(url: str) -> int:
    text = httpx.get(url + "/metrics").text
    return sum(
        int(float(m.group(1)))
        for m in re.finditer(
            r'^cgstudio_requests_total\{endpoint="[^"]*",status="5\d\d"\} (\S+)$', text, re.M
        )
    )


@pytest.fixture(scope="module")
def keyless(live_server: LiveFactory, synthetic: dict[str, Path]) -> Iterator[Live]:
    """A keyless loopback server: the one a web page in the user's browser can reach."""
    with live_server(synthetic) as live:
        yield live


# -- 1. web pages: Host, Origin, Content-Type ---------------------------------------------------------
def test_browser_policy_rules() -> None:
    loop = BrowserPolicy.from_settings(ServerSettings(allowed_hosts=["studio.lan", "*.corp.example"]))
    for ok in ("localhost", "LOCALHOST:11435", "localhost.", "127.0.0.1:1", "[::1]:11435", "10.0.0.7"):
        assert loop.host_error(ok) is None, ok
    for ok in ("studio.lan:8080", "a.corp.example"):
        assert loop.host_error(ok) is None, ok
    for bad in ("evil.example", "localhost.evil.example", "corp.example", "127.0.0.1.nip.io", "x.localhost"):
        error = loop.host_error(bad)
        assert error is not None and error.code == "host_not_allowed" and "--allowed-host" in error.message
    assert loop.host_error(None) is None  # HTTP/1.0 without Host is no browser
    assert loop.origin_error(None, "127.0.0.1:11435") is None
    assert loop.origin_error("http://127.0.0.1:11435", "127.0.0.1:11435") is None
    assert loop.origin_error("http://localhost:11435", "localhost:11435") is None
    for bad in ("http://evil.example", "http://127.0.0.1:3000", "null", "http://localhost:11435"):
        refused = loop.origin_error(bad, "127.0.0.1:11435")
        assert (
            refused is not None
            and refused.code == "origin_not_allowed"
            and "--cors-origin" in refused.message
        )
    cors = BrowserPolicy.from_settings(ServerSettings(cors_origins=["http://localhost:5173/"]))
    assert cors.origin_error("http://LOCALHOST:5173", "127.0.0.1:11435") is None
    assert BrowserPolicy.from_settings(ServerSettings(cors_origins=["*"])).origin_error("null", "x") is None
    assert BrowserPolicy.from_settings(ServerSettings(allowed_hosts=["*"])).host_error("evil.example") is None
    # Off loopback (an API key is required there) names are service or LAN names: only --allowed-host limits.
    public = BrowserPolicy.from_settings(ServerSettings(host="0.0.0.0", api_key="k"))
    assert public.host_error("cgstudio.internal:11435") is None


def test_foreign_host_is_403(keyless: Live) -> None:
    for path in ("/admin/models", "/v1/models", "/", "/health"):
        r = httpx.get(keyless.url + path, headers={"Host": "evil.example"})
        assert r.status_code == 403, path
        error = r.json()["error"]
        assert error["code"] == "host_not_allowed" and "--allowed-host evil.example" in error["message"]
        assert "codegemma" not in r.text  # no model paths through a rebound name
    port = keyless.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert httpx.get(keyless.url + "/admin/models", headers={"Host": host}).status_code == 200, host


def test_allowed_host_flag_admits_a_name(live_server: LiveFactory, synthetic: dict[str, Path]) -> None:
    with live_server({"cg-pt": synthetic["cg-pt"]}, allowed_hosts=["studio.lan"]) as live:
        assert httpx.get(live.url + "/v1/models", headers={"Host": "studio.lan:11435"}).status_code == 200
        assert httpx.get(live.url + "/v1/models", headers={"Host": "evil.example"}).status_code == 403


def test_cross_site_post_cannot_reload(keyless: Live) -> None:
    before = httpx.get(keyless.url + "/admin/models").json()["models"][0]["load"]["n_batch"]
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    r = httpx.post(keyless.url + "/admin/reload", headers=evil, content=b'{"load":{"n_batch":1}}', timeout=30)
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "origin_not_allowed" and "--cors-origin http://evil.example" in error["message"]
    # Same page, no body type (fetch with a Blob): still the Origin rule.
    r = httpx.post(
        keyless.url + "/admin/reload", headers={"Origin": "http://evil.example"}, content=b'{"load":{}}'
    )
    assert r.status_code == 403
    assert httpx.get(keyless.url + "/admin/models").json()["models"][0]["load"]["n_batch"] == before


def test_own_pages_keep_working(keyless: Live) -> None:
    page = httpx.get(keyless.url + "/", headers={"Origin": keyless.url})
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    r = httpx.post(
        keyless.url + "/v1/completions",
        json={**FIM, "max_tokens": 2},
        headers={"Origin": keyless.url},
        timeout=60,
    )
    assert r.status_code == 200


@pytest.mark.parametrize(
    "ctype",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/json"],
)
def test_non_json_body_is_415(keyless: Live, ctype: str) -> None:
    body = json.dumps({**FIM, "max_tokens": 1}).encode()
    r = httpx.post(keyless.url + "/v1/completions", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 415
    error = r.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]


@pytest.mark.parametrize("ctype", [None, "application/json", "application/json; charset=utf-8"])
def test_json_or_untyped_body_is_read(keyless: Live, ctype: str | None) -> None:
    body = json.dumps({**FIM, "max_tokens": 1}).encode()
    headers = {"Content-Type": ctype} if ctype else {}
    r = httpx.post(keyless.url + "/v1/completions", content=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text


def test_openai_and_ollama_clients_pass(keyless: Live) -> None:
    oa = openai.OpenAI(base_url=keyless.url + "/v1", api_key="none", max_retries=0)
    assert oa.completions.create(model="cg-pt", prompt="def f(", max_tokens=2).choices
    assert ollama.Client(host=keyless.url).generate(
        model="cg-pt", prompt="def f(", options={"num_predict": 2}
    )


# -- 2. text that is not text: lone surrogates, NUL in a file path -------------------------------------
SURROGATE_BODIES = [
    ("/v1/completions", b'{"prompt": "\\ud800", "max_tokens": 1}', "not valid Unicode"),
    ("/v1/completions", b'{"prompt": "x", "suffix": "y", "filepath": "a\\udc00.py", "max_tokens": 1}', None),
    (
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "\\ud800"}], "max_tokens": 1}',
        None,
    ),
    ("/infill", b'{"input_prefix": "x", "input_extra": [{"filename": "\\ud800", "text": "y"}]}', None),
    ("/tokenize", b'{"content": "a\\ud800b"}', "not valid Unicode"),
    # The message quotes the file name: the error JSON must still encode, with that message.
    (
        "/infill",
        b'{"input_prefix": "x", "input_extra": [{"filename": "\\ud800", "text": "a\\u0000"}]}',
        "NUL",
    ),
]


def test_lone_surrogate_is_an_ordinary_400(keyless: Live) -> None:
    before = server_5xx(keyless.url)
    with httpx.Client(base_url=keyless.url, timeout=60) as c:
        for path, body, said in SURROGATE_BODIES:
            bad = c.post(path, content=body, headers={"Content-Type": "application/json"})
            assert bad.status_code == 400, (path, body, bad.text)
            error = bad.json()["error"]
            assert error["code"] == "invalid_input" and (said is None or said in error["message"]), error
            # The same keep-alive connection serves the next request.
            good = c.post("/v1/completions", json={**FIM, "max_tokens": 1})
            assert good.status_code == 200, (path, body)
    assert server_5xx(keyless.url) == before


def test_nul_in_file_paths_is_400_like_in_a_prompt(keyless: Live) -> None:
    prompt = httpx.post(keyless.url + "/v1/completions", json={**FIM, "prompt": "a\x00b", "max_tokens": 1})
    assert prompt.status_code == 400 and prompt.json()["error"]["code"] == "invalid_input"
    cases = [
        ("/v1/completions", {**FIM, "filepath": "src/a\x00.py", "max_tokens": 1}),
        ("/api/generate", {"model": "cg-pt", **FIM, "filepath": "a\x00.py", "stream": False}),
        ("/infill", {"input_prefix": "x", "filepath": "a\x00.py", "n_predict": 1}),
        ("/v1/prompt", {**FIM, "filepath": "\x00"}),
        ("/infill", {"input_prefix": "x", "input_extra": [{"filename": "u\x00.py", "text": "y"}]}),
    ]
    for path, body in cases:
        r = httpx.post(keyless.url + path, json=body, timeout=60)
        assert r.status_code == 400, (path, r.text)
        if path.startswith("/api/"):  # Ollama's shape: the message is the error
            assert r.json()["code"] == "invalid_input" and "NUL" in r.json()["error"]
        else:
            assert r.json()["error"]["code"] == "invalid_input" and "NUL" in r.json()["error"]["message"]


# -- 3. slow clients and connection caps ---------------------------------------------------------------
@contextlib.contextmanager
def bounded_server(models: dict[str, Path], **config: Any) -> Iterator[str]:
    """The app behind cgstudio serve's listener (bound sockets, bounded protocol), in a thread."""
    from cgstudio.engine.llamacpp import LlamaCppEngine

    def loader(path: Path, settings: Settings) -> Engine:
        return TestEngine(LlamaCppEngine(path, settings.load))

    cfg = ServerSettings(
        models=[ModelSpec(alias=a, path=p) for a, p in models.items()],
        settings=isolated_settings(n_ctx=512, n_threads=2),
        port=0,
        **config,
    )
    app = create_app(cfg, loader=loader)
    sockets = bind(cfg.host, cfg.port)
    server = GracefulServer(uvicorn_config(app, cfg, log_level="warning"), app.state.runner.begin_shutdown)
    with serve_server(server, sockets) as url:
        yield url


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def test_half_open_and_slow_header_connections_are_closed(synthetic: dict[str, Path]) -> None:
    with bounded_server({"cg-pt": synthetic["cg-pt"]}, read_timeout_s=1.0) as url:
        silent = [_connect(url) for _ in range(20)]
        partial = _connect(url)
        partial.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        t0 = time.monotonic()
        for _ in range(4):  # a byte now and then keeps no timer alive
            time.sleep(0.3)
            partial.sendall(b"x")
        assert httpx.get(url + "/health").status_code == 200  # the server answers meanwhile
        assert _closed_by_server(partial, within_s=3)
        assert all(_closed_by_server(s, within_s=3) for s in silent)
        assert time.monotonic() - t0 < 6
        # A keep-alive connection gets the same deadline for its next request's head.
        with _connect(url) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            for _ in range(8):
                time.sleep(0.3)
                try:
                    sock.sendall(b"G")
                except OSError:
                    break
            assert _closed_by_server(sock, within_s=3)


def test_slow_body_is_408_and_closed(synthetic: dict[str, Path]) -> None:
    with bounded_server({"cg-pt": synthetic["cg-pt"]}, read_timeout_s=1.0) as url, _connect(url) as sock:
        body = b'{"content": "' + b"a" * 100 + b'"}'
        sock.sendall(
            b"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        reply = b""
        t0 = time.monotonic()
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.2)
            with contextlib.suppress(BlockingIOError):
                reply += sock.recv(65536, socket.MSG_DONTWAIT)
            if reply:
                break
        assert time.monotonic() - t0 < 5
        sock.settimeout(3)
        while chunk := sock.recv(65536):  # the rest of the answer, then the server closes
            reply += chunk
        head, _, rest = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head.lower()
        assert json.loads(rest)["error"]["code"] == "request_timeout"


def test_connections_beyond_the_cap_get_503(synthetic: dict[str, Path]) -> None:
    with bounded_server({"cg-pt": synthetic["cg-pt"]}, read_timeout_s=1.0, max_connections=4) as url:
        idle = [_connect(url) for _ in range(4)]
        time.sleep(0.2)
        assert httpx.get(url + "/health").status_code == 503
        for s in idle:
            assert _closed_by_server(s, within_s=3)
        assert httpx.get(url + "/health").status_code == 200


# -- 4. shutdown and start-up ---------------------------------------------------------------------------
LAUNCHER = """
import sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from server_testing import TestEngine, isolated_settings

from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.server import ServerSettings, create_app
from cgstudio.server.config import ModelSpec
from cgstudio.server.listener import run

def loader(path, settings):
    return TestEngine(LlamaCppEngine(path, settings.load), delay_s=0.05)

cfg = ServerSettings(
    models=[ModelSpec(alias="cg-pt", path=Path({model!r}))],
    settings=isolated_settings(n_ctx=512, n_threads=2),
    port=0,
    parallel=2,
    shutdown_grace_s=5,
)
app = create_app(cfg, loader=loader)
run(app, cfg, log_level="info", announce=lambda url: print("serving on", url, flush=True))
"""


def _stream_lines(
    url: str, path: str, body: dict[str, Any], lines: list[str], started: threading.Event
) -> None:
    try:
        with httpx.stream("POST", url + path, json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line:
                    lines.append(line)
                if len(lines) >= 3:
                    started.set()
    except httpx.HTTPError as exc:  # an incomplete chunked read is what this test forbids
        lines.append(f"client error: {type(exc).__name__}: {exc}")
    finally:
        started.set()


def test_sigterm_ends_streams_with_error_events_and_exits_0(
    synthetic: dict[str, Path], tmp_path: Path
) -> None:
    script = tmp_path / "launch.py"
    script.write_text(LAUNCHER.format(tests=str(HERE), model=str(synthetic["cg-pt"])))
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("serving on "), first + (proc.stderr.read() if proc.stderr else "")
        url = first.split()[-1]
        streams: dict[str, tuple[str, dict[str, Any], list[str]]] = {
            "openai": ("/v1/completions", {**FIM, "max_tokens": 2000, "stream": True}, []),
            "ollama": ("/api/generate", {"model": "cg-pt", **FIM, "options": {"num_predict": 2000}}, []),
        }
        threads, started = [], []
        for path, body, lines in streams.values():
            ev = threading.Event()
            t = threading.Thread(target=_stream_lines, args=(url, path, body, lines, ev), daemon=True)
            t.start()
            threads.append(t)
            started.append(ev)
        for ev in started:
            assert ev.wait(60)
        queued: list[httpx.Response] = []  # both slots are busy: this one waits in the queue
        waiter = threading.Thread(
            target=lambda: queued.append(httpx.post(url + "/v1/completions", json=FIM, timeout=60)),
            daemon=True,
        )
        waiter.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in [*threads, waiter]:
            t.join(30)
        rc = proc.wait(30)
        stopped_s = time.monotonic() - t0
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, stderr
    assert "Traceback" not in stderr and "CancelledError" not in stderr, stderr
    assert stopped_s < 5  # the streams were told at once, not cut after the grace period
    oa = streams["openai"][2]
    assert oa[-1] == "data: [DONE]", oa[-3:]
    error = json.loads(oa[-2].removeprefix("data: "))["error"]
    assert error["code"] == "shutting_down" and "shutting down" in error["message"]
    ol = streams["ollama"][2]
    assert "shutting down" in json.loads(ol[-1])["error"], ol[-3:]
    assert queued[0].status_code == 503 and queued[0].json()["error"]["code"] == "shutting_down"


def test_taken_port_fails_in_one_line_before_announcing(synthetic: dict[str, Path], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "CGSTUDIO_PROFILE": str(tmp_path / "none.toml")}
        args = ["--port", str(port), "-c", "512"]
        r = subprocess.run(
            [sys.executable, "-m", "cgstudio.cli.main", "serve", "-m", str(synthetic["cg-pt"]), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert r.returncode != 0
    assert f"port {port} is in use" in r.stderr and "--port N" in r.stderr
    assert "serving on" not in r.stderr and "Traceback" not in r.stderr and "Errno" not in r.stderr


def test_bind_errors_say_what_to_do() -> None:
    with pytest.raises(ListenError, match=r"192\.0\.2\.1 is not an address of this machine; pass --host"):
        bind("192.0.2.1", 0)  # TEST-NET-1: never a local address
    with pytest.raises(ListenError, match="cannot resolve --host"):
        bind("no-such-host.invalid", 0)
    sockets = bind("127.0.0.1", 0)
    try:
        port = sockets[0].getsockname()[1]
        assert listening_url(sockets, "127.0.0.1") == f"http://127.0.0.1:{port}"
        sockets[0].listen()
        with pytest.raises(ListenError, match=f"port {port} is in use on 127.0.0.1; stop the other"):
            bind("127.0.0.1", port)
    finally:
        for sock in sockets:
            sock.close()


def test_keep_alive_0_during_a_stream_unloads_when_it_ends(
    live_server: LiveFactory, synthetic: dict[str, Path]
) -> None:
    with live_server({"cg-pt": synthetic["cg-pt"]}, delay_s=0.02, keep_alive_s=None) as live:

        def loaded() -> list[str]:
            return [m["name"] for m in httpx.get(live.url + "/api/ps").json()["models"]]

        with (
            httpx.Client(base_url=live.url, timeout=30) as c,
            c.stream("POST", "/v1/completions", json={**FIM, "max_tokens": 2000, "stream": True}) as r,
        ):
            lines = r.iter_lines()
            next(line for line in lines if line.startswith("data: "))
            unload = httpx.post(live.url + "/api/generate", json={"model": "cg-pt", "keep_alive": 0}).json()
            assert unload["done_reason"] == "unload"
            assert loaded() == ["cg-pt"]  # still streaming: it stays until the stream ends
        wait_for(lambda: loaded() == [], timeout=10)
