"""`cgstudio serve` as a person runs it: the last start-up line, the access log, stopping it."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from cgstudio.store.demo import DEMO_MODELS


class Served:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._q: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            line = self._q.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"server ended before {pattern!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m

    def stop(self, *signals: signal.Signals) -> tuple[int, str]:
        for sig in signals:
            self.proc.send_signal(sig)
            time.sleep(0.05)
        rc = self.proc.wait(30)
        while (line := self._q.get(timeout=10)) is not None:
            self.lines.append(line)
        return rc, "\n".join(self.lines)


@contextmanager
def serve(model: Path, *flags: str) -> Iterator[tuple[Served, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cgstudio.cli.main", "serve", "-m", str(model), "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # uvicorn's access log goes to stdout
        text=True,
    )
    try:
        served = Served(proc)
        url = served.wait_for(r"^Open (http://127\.0\.0\.1:\d+) in your browser$").group(1)
        yield served, url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_open_line_comes_last_and_the_access_log_is_off(codegemma_paths: dict[str, Path]) -> None:
    with serve(codegemma_paths["control"]) as (served, url):
        assert any("Application startup complete" in line for line in served.lines[:-1])
        assert httpx.get(url + "/v1/models").status_code == 200
        rc, log = served.stop(signal.SIGTERM)
    assert rc == 0
    assert "GET /v1/models" not in log  # no access log by default


def test_access_log_flag_turns_it_on(codegemma_paths: dict[str, Path]) -> None:
    with serve(codegemma_paths["control"], "--access-log") as (served, url):
        assert httpx.get(url + "/v1/models").status_code == 200
        rc, log = served.stop(signal.SIGTERM)
    assert rc == 0 and "GET /v1/models" in log


def test_ctrl_c_twice_mid_stream_prints_no_traceback(codegemma_paths: dict[str, Path]) -> None:
    with serve(codegemma_paths["control"]) as (served, url):
        got: list[str] = []
        started = threading.Event()

        def stream() -> None:
            body = {"prompt": "def f():\n", "max_tokens": 4000, "stream": True, "temperature": 1.0}
            try:
                with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as r:
                    for line in r.iter_lines():
                        got.append(line)
                        started.set()
            except httpx.HTTPError as exc:
                got.append(repr(exc))
            started.set()

        t = threading.Thread(target=stream, daemon=True)
        t.start()
        assert started.wait(60)
        rc, log = served.stop(signal.SIGINT, signal.SIGINT)  # a second Ctrl-C forces the exit
        t.join(10)
    assert rc == 0, log
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert "Application shutdown complete" in log  # the app's shutdown still ran


def test_single_sigint_stops_cleanly(codegemma_paths: dict[str, Path]) -> None:
    with serve(codegemma_paths["control"]) as (served, _):
        rc, log = served.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in log and "Application shutdown complete" in log


@pytest.mark.slow
def test_serve_without_a_model_serves_both_demo_models(demo_paths: dict[str, Path]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cgstudio.cli.main", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        served = Served(proc)
        url = served.wait_for(r"^Open (http://127\.0\.0\.1:\d+) in your browser$").group(1)
        ids = [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]]
        rc, log = served.stop(signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert ids == list(DEMO_MODELS) and rc == 0
    assert "serving the demo models" in log
