"""Server reliability: schemathesis fuzzing (no 5xx) and a bounded loopback load (no errors, flat RSS).

    .venv/bin/python scripts/server_reliability.py                     # both phases, demo model for load
    .venv/bin/python scripts/server_reliability.py --model PATH.gguf --requests 500 --concurrency 8
    .venv/bin/python scripts/server_reliability.py --skip-load --fuzz-examples 50

Phase 1 starts ``cgstudio serve`` on three tiny synthetic CodeGemma GGUFs (fast, so fuzzed
requests with huge max_tokens still finish) and runs schemathesis against /openapi.json with
the ``not_a_server_error`` check; it then reads the server's own /metrics and requires zero
5xx answers. /admin/reload is left out: it changes load parameters for the rest of the run.

Phase 2 starts ``cgstudio serve`` on --model (default: the demo model, as ``make serve``; ``synthetic``
for the tiny random models, which measures the server rather than the model) and
sends --requests mixed requests over all three dialects from --concurrency workers (streaming
and not; each worker has its own X-Client-Id so none supersedes another). Every answer must be
a 200 with a complete body or stream. The server's RSS is sampled after a warm-up and every
100 requests; growth past max(32 MiB, 5 %) fails the run. This is a script, not a timed test.

Phase 3 (edges) starts a keyless loopback server, the one a web page can reach, and checks the
browser rules (foreign Origin/Host, text/plain bodies), a lone surrogate followed by a good request
on the same keep-alive connection, slow headers and bodies, 300 half-open connections, and SIGTERM
in the middle of a stream (error event, exit 0, no traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from cgstudio.testing.subprocess_server import ServeProcess, ServerStartError

KEY = "reliability-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class Server(ServeProcess):
    """``cgstudio serve`` in a subprocess on a free loopback port, started at once; with a key unless
    ``api_key`` is None."""

    def __init__(self, args: list[str], log: Path, api_key: str | None = KEY) -> None:
        key = ["--api-key", api_key] if api_key else []
        args = [*args, *key, "--log-level", "warning", "--keep-alive", "-1", "--max-queue", "64"]
        super().__init__(args, log=log, start_timeout_s=300)
        try:
            self.start()
        except ServerStartError as exc:
            raise SystemExit(str(exc)) from exc

    def rss_mib(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / (1 << 20)

    def server_errors(self) -> int:
        text = httpx.get(self.url + "/metrics", headers=AUTH, timeout=30).text
        return sum(
            int(float(m.group(2)))
            for m in re.finditer(
                r'^cgstudio_requests_total\{endpoint="[^"]*",status="(5\d\d)"\} (\S+)$', text, re.M
            )
        )


# -- phase 1: schemathesis ------------------------------------------------------------------------
def synthetic_models(workdir: Path) -> list[str]:
    """--model arguments for three tiny synthetic models: pretrained FIM, instruction-tuned, no FIM."""
    from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

    pt = write_codegemma_gguf(workdir / "codegemma-2b-synthetic.gguf")
    it = write_codegemma_gguf(workdir / "codegemma-7b-it-synthetic.gguf", name="codegemma-7b-it")
    nofim = write_codegemma_gguf(workdir / "gemma-2b-synthetic.gguf", name="gemma-2b", include_fim=False)
    return ["-m", f"pt={pt}", "-m", f"it={it}", "-m", f"nofim={nofim}"]


def fuzz(examples: int, workdir: Path) -> dict[str, Any]:
    server = Server([*synthetic_models(workdir), "-c", "1024"], workdir / "fuzz-server.log")
    try:
        t0 = time.monotonic()
        st = Path(sys.executable).with_name("schemathesis")
        cmd = [
            str(st),
            "run",
            server.url + "/openapi.json",
            "-H",
            f"Authorization: Bearer {KEY}",
            "--checks",
            "not_a_server_error",
            "--exclude-path",
            "/admin/reload",
            "-n",
            str(examples),
            "--seed",
            "1",
            "-w",
            "2",
            "--request-timeout",
            "120",
            "--output-truncate",
            "true",
        ]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
        out = r.stdout + r.stderr
        cases = re.search(r"(\d+) generated, (\d+) passed", out)
        internal = re.search(r"Runtime Error: (\d+)", out)
        result = {
            "schemathesis_exit": r.returncode,
            # errors inside schemathesis' own data generation (not server answers), e.g. hypothesis flakiness
            "schemathesis_internal_errors": int(internal.group(1)) if internal else 0,
            "operations": (m.group(1) if (m := re.search(r"Tested: (\d+)", out)) else "?"),
            "cases_generated": int(cases.group(1)) if cases else None,
            "cases_passed": int(cases.group(2)) if cases else None,
            "server_5xx": server.server_errors(),
            "server_alive": server.process.poll() is None,
            "seconds": round(time.monotonic() - t0, 1),
        }
        (workdir / "schemathesis.txt").write_text(out)
        return result
    finally:
        server.stop()


# -- phase 2: load --------------------------------------------------------------------------------
PY_LINES = [
    "total = 0",
    "for item in items:",
    "    total += item",
    "return total",
    "if not items:",
    "    return None",
    "result = []",
    "seen = set()",
]


def doc(i: int) -> tuple[str, str]:
    name = f"func_{i}"
    prefix = (
        f'def {name}(items):\n    """Sum of items number {i}."""\n    {PY_LINES[i % len(PY_LINES)]}\n    '
    )
    return prefix, f"\n\nprint({name}([1, 2, {i}]))\n"


async def _json(r: httpx.Response) -> Any:
    if r.status_code != 200:
        raise AssertionError(f"HTTP {r.status_code}: {r.text[:200]}")
    return r.json()


async def _sse(c: httpx.AsyncClient, path: str, body: dict[str, Any], final: Callable[[Any], bool]) -> None:
    async with c.stream("POST", path, json=body) as r:
        if r.status_code != 200:
            raise AssertionError(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
        done = False
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                ev = json.loads(line[6:])
                if "error" in ev:
                    raise AssertionError(f"stream error {ev['error']}")
                done = done or final(ev)
        if not done:
            raise AssertionError("the stream ended without its final event")


async def _ndjson(c: httpx.AsyncClient, path: str, body: dict[str, Any]) -> None:
    async with c.stream("POST", path, json=body) as r:
        if r.status_code != 200:
            raise AssertionError(f"HTTP {r.status_code}")
        last: dict[str, Any] = {}
        async for line in r.aiter_lines():
            if line.strip():
                last = json.loads(line)
                if "error" in last:
                    raise AssertionError(f"stream error {last['error']}")
        if not last.get("done"):
            raise AssertionError("the NDJSON stream ended without done")


def mix(max_tokens: int) -> list[tuple[str, Callable[[httpx.AsyncClient, int], Awaitable[None]]]]:
    async def oai_fim(c: httpx.AsyncClient, i: int) -> None:
        p, s = doc(i)
        r = await _json(
            await c.post(
                "/v1/completions",
                json={
                    "model": "default",
                    "prompt": p,
                    "suffix": s,
                    "max_tokens": max_tokens,
                    "temperature": 0.2,
                },
            )
        )
        assert r["choices"][0]["finish_reason"] and "usage" in r

    async def oai_fim_stream(c: httpx.AsyncClient, i: int) -> None:
        p, s = doc(i)
        await _sse(
            c,
            "/v1/completions",
            {
                "prompt": p,
                "suffix": s,
                "max_tokens": max_tokens,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            lambda e: bool(e.get("usage")),
        )

    async def oai_raw(c: httpx.AsyncClient, i: int) -> None:
        p, _ = doc(i)
        await _json(
            await c.post("/v1/completions", json={"prompt": "# file: a.py\n" + p, "max_tokens": max_tokens})
        )

    async def oai_chat_stream(c: httpx.AsyncClient, i: int) -> None:
        msgs = [{"role": "user", "content": f"Write a Python one-liner that squares {i}."}]
        await _sse(
            c,
            "/v1/chat/completions",
            {"messages": msgs, "max_tokens": max_tokens, "stream": True},
            lambda e: bool(e.get("choices")) and e["choices"][0].get("finish_reason") is not None,
        )

    async def ollama_fim_stream(c: httpx.AsyncClient, i: int) -> None:
        p, s = doc(i)
        await _ndjson(
            c,
            "/api/generate",
            {"model": "default", "prompt": p, "suffix": s, "options": {"num_predict": max_tokens}},
        )

    async def ollama_chat(c: httpx.AsyncClient, i: int) -> None:
        r = await _json(
            await c.post(
                "/api/chat",
                json={
                    "model": "default",
                    "stream": False,
                    "options": {"num_predict": max_tokens},
                    "messages": [{"role": "user", "content": f"What is {i} squared? Answer briefly."}],
                },
            )
        )
        assert r["done"] is True

    async def infill(c: httpx.AsyncClient, i: int) -> None:
        p, s = doc(i)
        head, _, line = p.rpartition("\n")
        r = await _json(
            await c.post(
                "/infill",
                json={
                    "input_prefix": head + "\n",
                    "prompt": line,
                    "input_suffix": s,
                    "n_predict": max_tokens,
                    "input_extra": [
                        {"filename": "util.py", "text": f"def helper_{i % 5}(x):\n    return x * {i % 5}\n"}
                    ],
                    "response_fields": ["content", "timings/prompt_n", "stop_type"],
                },
            )
        )
        assert "content" in r

    async def completion_stream(c: httpx.AsyncClient, i: int) -> None:
        p, _ = doc(i)
        await _sse(
            c,
            "/completion",
            {"prompt": p, "n_predict": max_tokens, "stream": True},
            lambda e: e.get("stop") is True,
        )

    async def tokenize(c: httpx.AsyncClient, i: int) -> None:
        r = await _json(await c.post("/tokenize", json={"content": doc(i)[0], "with_pieces": True}))
        assert r["tokens"]

    async def show_prompt(c: httpx.AsyncClient, i: int) -> None:
        p, s = doc(i)
        r = await _json(
            await c.post("/v1/prompt", json={"prompt": p, "suffix": s, "filepath": f"src/m{i}.py"})
        )
        assert r["prompt_tokens"]

    async def listing(c: httpx.AsyncClient, i: int) -> None:
        path = ["/v1/models", "/api/tags", "/health", "/api/ps"][i % 4]
        await _json(await c.get(path))

    return [
        ("openai_fim", oai_fim),
        ("openai_fim_stream", oai_fim_stream),
        ("openai_raw", oai_raw),
        ("openai_chat_stream", oai_chat_stream),
        ("ollama_fim_stream", ollama_fim_stream),
        ("ollama_chat", ollama_chat),
        ("llamacpp_infill", infill),
        ("llamacpp_completion_stream", completion_stream),
        ("tokenize", tokenize),
        ("prompt", show_prompt),
        ("listing", listing),
    ]


async def run_load(server: Server, n: int, concurrency: int, max_tokens: int, warmup: int) -> dict[str, Any]:
    kinds = mix(max_tokens)
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: Counter[str] = Counter()
    rss: list[tuple[int, float]] = []
    done = 0
    next_i = 0
    lock = asyncio.Lock()

    async def worker(w: int) -> None:
        nonlocal done, next_i
        headers = {**AUTH, "X-Client-Id": f"load-worker-{w}"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=600) as c:
            while True:
                async with lock:
                    if next_i >= n:
                        return
                    i, next_i = next_i, next_i + 1
                name, fn = kinds[i % len(kinds)]
                t0 = time.perf_counter()
                try:
                    await fn(c, i)
                    latencies[name].append(time.perf_counter() - t0)
                except Exception as exc:
                    errors[f"{name}: {type(exc).__name__}: {str(exc)[:120]}"] += 1
                done += 1
                if done in (warmup, n) or (done > warmup and done % 100 == 0):
                    rss.append((done, server.rss_mib()))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    wall = time.perf_counter() - t0
    base = next((m for d, m in rss if d >= warmup), rss[0][1])
    final = rss[-1][1]
    growth = final - base
    limit = max(32.0, 0.05 * base)
    return {
        "requests": n,
        "concurrency": concurrency,
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "wall_s": round(wall, 1),
        "requests_per_s": round(n / wall, 2),
        "latency_s": {
            k: {
                "n": len(v),
                "p50": round(statistics.median(v), 3),
                "p95": round(sorted(v)[max(0, int(len(v) * 0.95) - 1)], 3),
            }
            for k, v in sorted(latencies.items())
        },
        "rss_mib": [(d, round(m, 1)) for d, m in rss],
        "rss_growth_mib": round(growth, 1),
        "rss_limit_mib": round(limit, 1),
        "rss_ok": growth <= limit,
        "server_5xx": server.server_errors(),
    }


def load(
    model: str | None, ctx: int, n: int, concurrency: int, max_tokens: int, workdir: Path
) -> dict[str, Any]:
    models = synthetic_models(workdir) if model == "synthetic" else (["-m", model] if model else [])
    args = [*models, "-c", str(ctx)]
    server = Server(args, workdir / "load-server.log")
    try:
        return asyncio.run(run_load(server, n, concurrency, max_tokens, warmup=min(50, n // 5)))
    finally:
        server.stop()


# -- phase 3: edges (hostile pages, slow clients, bad text, shutdown) --------------------------------
def _raw_http(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out


def _closed_within(port: int, prefix: bytes, trickle: bytes, limit_s: float) -> float | None:
    """Seconds until the server closes a connection that sends ``prefix`` then one byte of
    ``trickle`` a second; None when it is still open after ``limit_s``."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        s.sendall(prefix)
        for b in trickle:
            if time.monotonic() - t0 > limit_s:
                return None
            try:
                s.sendall(bytes([b]))
                if s.recv(65536) == b"":
                    return round(time.monotonic() - t0, 1)
            except TimeoutError:
                continue
            except OSError:  # reset or broken pipe: closed by the server
                return round(time.monotonic() - t0, 1)
        while time.monotonic() - t0 <= limit_s:
            try:
                if s.recv(65536) == b"":
                    return round(time.monotonic() - t0, 1)
            except TimeoutError:
                continue
            except OSError:
                return round(time.monotonic() - t0, 1)
    return None


def edge_cases(workdir: Path) -> dict[str, Any]:
    """Cross-origin requests, slow and half-open connections, lone surrogates and SIGTERM mid-stream."""
    models = synthetic_models(workdir)
    out: dict[str, Any] = {}
    # A keyless loopback server: the case a web page in the user's browser can reach.
    server = Server([*models, "-c", "1024"], workdir / "edges-server.log", api_key=None)
    try:
        url, port = server.url, server.port
        evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
        r = httpx.post(url + "/admin/reload", headers=evil, content=b'{"load":{"n_batch":1}}', timeout=30)
        out["cross_origin_reload_status"] = r.status_code
        r = httpx.get(url + "/admin/models", headers={"Host": "evil.example"}, timeout=30)
        out["foreign_host_status"] = r.status_code
        r = httpx.post(
            url + "/v1/completions",
            headers={"Content-Type": "text/plain"},
            content=b'{"prompt": "x", "max_tokens": 1}',
            timeout=30,
        )
        out["text_plain_body_status"] = r.status_code
        r = httpx.post(url + "/v1/completions", json={"prompt": "def f(", "max_tokens": 2}, timeout=60)
        out["plain_client_status"] = r.status_code
        r = httpx.get(url + "/", headers={"Origin": url}, timeout=30)
        out["own_origin_page_status"] = r.status_code
        # A lone surrogate, then a good request on the same keep-alive connection.
        before = server.server_errors()
        with httpx.Client(base_url=url, timeout=60) as c:
            bad = c.post(
                "/v1/completions",
                headers={"Content-Type": "application/json"},
                content=b'{"prompt": "\\ud800", "max_tokens": 1}',
            )
            good = c.post("/v1/completions", json={"prompt": "def g(", "max_tokens": 2})
        out["lone_surrogate_status"] = bad.status_code
        out["next_on_same_connection_status"] = good.status_code
        out["lone_surrogate_5xx"] = server.server_errors() - before
        # Slow clients: headers one byte a second, and a body one byte a second.
        out["slow_headers_closed_after_s"] = _closed_within(port, b"GET /health HTTP/1.1\r\n", b"X" * 60, 40)
        body = b'{"prompt": "' + b"a" * 100 + b'"}'
        head = (
            b"POST /tokenize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        out["slow_body_closed_after_s"] = _closed_within(port, head, body, 40)
        # 300 half-open connections: closed by the server, which still answers meanwhile.
        socks = []
        for _ in range(300):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        out["half_open_opened"] = len(socks)
        out["health_during_half_open"] = httpx.get(url + "/health", timeout=30).status_code
        deadline = time.monotonic() + 60
        open_left = len(socks)
        while open_left and time.monotonic() < deadline:
            time.sleep(2)
            open_left = sum(1 for s in socks if _still_open(s))
        out["half_open_still_open_after_s"] = {"open": open_left, "waited_s": 60 if open_left else None}
        for s in socks:
            s.close()
        out["server_alive"] = server.process.poll() is None
        out["server_5xx"] = server.server_errors()
    finally:
        server.stop()
    out["sigterm"] = _sigterm_mid_stream(workdir)
    return out


def _still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def _sigterm_mid_stream(workdir: Path) -> dict[str, Any]:
    # The demo model, not the synthetic ones: a random model can end its stream before the signal lands.
    log = workdir / "sigterm-server.log"
    server = Server(["-c", "1024"], log, api_key=None)
    events: list[str] = []
    error_event = False
    done_marker = False
    try:
        with httpx.stream(
            "POST",
            server.url + "/v1/chat/completions",
            json={
                "messages": [{"role": "user", "content": "Write a long Python tutorial on classes."}],
                "max_tokens": 900,
                "stream": True,
            },
            timeout=60,
        ) as r:
            t0 = time.monotonic()
            sent = False
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(line)
                    error_event = error_event or '"error"' in line
                    done_marker = done_marker or line == "data: [DONE]"
                if not sent and len(events) >= 3:
                    server.process.send_signal(signal.SIGTERM)
                    sent = True
            stream_s = round(time.monotonic() - t0, 1)
        rc = server.process.wait(60)
        clean_end = True
    except httpx.HTTPError as exc:
        rc = server.process.wait(60)
        clean_end = False
        stream_s = None
        events.append(f"client error: {type(exc).__name__}: {exc}")
    finally:
        server.stop()
    text = log.read_text()
    return {
        "exit_code": rc,
        "stream_ended_cleanly": clean_end,
        "error_event": error_event,
        "done_marker": done_marker,
        "stream_s": stream_s,
        "traceback_in_log": "Traceback" in text,
    }


def edges_ok(e: dict[str, Any]) -> bool:
    return (
        e["cross_origin_reload_status"] == 403
        and e["foreign_host_status"] == 403
        and e["text_plain_body_status"] in (403, 415)
        and e["plain_client_status"] == 200
        and e["own_origin_page_status"] == 200
        and e["lone_surrogate_status"] == 400
        and e["next_on_same_connection_status"] == 200
        and e["lone_surrogate_5xx"] == 0
        and e["slow_headers_closed_after_s"] is not None
        and e["slow_body_closed_after_s"] is not None
        and e["health_during_half_open"] == 200
        and e["half_open_still_open_after_s"]["open"] == 0
        and e["server_alive"]
        and e["server_5xx"] == 0
        and e["sigterm"]["exit_code"] == 0
        and e["sigterm"]["stream_ended_cleanly"]
        and e["sigterm"]["error_event"]
        and not e["sigterm"]["traceback_in_log"]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model",
        default=None,
        help="load: GGUF path, demo alias, or 'synthetic' (tiny random models) [demo]",
    )
    ap.add_argument("--ctx-size", type=int, default=2048)
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--fuzz-examples", type=int, default=30, help="schemathesis examples per operation")
    ap.add_argument("--skip-fuzz", action="store_true")
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-edges", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)
    os.environ.setdefault("CGSTUDIO_PROFILE", "/nonexistent/cgstudio-profile.toml")  # defaults only
    report: dict[str, Any] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="cgstudio-reliability-") as tmp:
        workdir = Path(tmp)
        if not args.skip_fuzz:
            report["fuzz"] = fuzz(args.fuzz_examples, workdir)
            f = report["fuzz"]
            ok &= f["server_5xx"] == 0 and f["server_alive"] and f["cases_generated"] == f["cases_passed"]
            print(json.dumps({"fuzz": f}, indent=2), flush=True)
        if not args.skip_load:
            report["load"] = load(
                args.model, args.ctx_size, args.requests, args.concurrency, args.max_tokens, workdir
            )
            lo = report["load"]
            ok &= lo["errors"] == 0 and lo["rss_ok"] and lo["server_5xx"] == 0
            print(json.dumps({"load": lo}, indent=2), flush=True)
        if not args.skip_edges:
            report["edges"] = edge_cases(workdir)
            ok &= edges_ok(report["edges"])
            print(json.dumps({"edges": report["edges"]}, indent=2), flush=True)
    report["ok"] = ok
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
