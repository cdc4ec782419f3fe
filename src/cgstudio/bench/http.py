"""HTTP streaming through our server and llama-cpp-python's own server, as subprocesses on loopback."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from cgstudio.core.settings import LoadProfile
from cgstudio.engine.remote.client import UpstreamClient
from cgstudio.testing.subprocess_server import free_port, server_process


@dataclass
class Served:
    name: str
    base_url: str
    proc: subprocess.Popen[bytes]

    def rss_mib(self) -> float:
        try:
            p = psutil.Process(self.proc.pid)
            return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20
        except psutil.Error:
            return float("nan")


@contextlib.contextmanager
def serve(
    kind: str,
    model: Path,
    profile: LoadProfile,
    log_dir: Path,
    *,
    parallel: int = 1,
    binary: Path | None = None,
    extra: Sequence[str] = (),
) -> Iterator[Served]:
    """``kind`` is cgstudio, llama_cpp (llama-cpp-python's server) or llama-server (``binary``,
    llama.cpp's own server, as ``make peer`` builds it), each on a free loopback port; ``extra``
    goes at the end of its command line."""
    port = free_port()
    env: dict[str, str] | None = None
    threads = str(profile.n_threads or os.cpu_count() or 1)
    # The flags llama-server and cgstudio serve spell alike.
    shared = ["--model", str(model), "--port", str(port), "--threads", threads]
    shared += ["--batch-size", str(profile.n_batch), "--parallel", str(parallel)]
    if kind == "llama-server":
        if binary is None:
            raise ValueError("llama-server needs the binary's path")
        # Its defaults otherwise: prompt caching on, exact prefix reuse only (no --cache-reuse).
        # Its n_ctx is shared by the slots, so each slot gets what cgstudio gives each sequence.
        # Flash attention as the profile has it: llama-server's default ("auto") turns it on for
        # the CPU, cgstudio's is off, and the two kernels run at different speeds.
        cmd = [str(binary), *shared, "--ctx-size", str(profile.n_ctx * parallel), "--threads-batch", threads]
        cmd += ["--flash-attn", "on" if profile.flash_attn else "off"]
        health = f"http://127.0.0.1:{port}/health"
    elif kind == "cgstudio":
        cmd = [sys.executable, "-m", "cgstudio.cli.main", "serve", *shared, "--ctx-size", str(profile.n_ctx)]
        cmd += ["--flash-attn"] if profile.flash_attn else []
        # Off must mean off: not a setting the child would read from the environment or a profile.
        env = {**os.environ, "CGSTUDIO_LOAD__FLASH_ATTN": "true" if profile.flash_attn else "false"}
        health = f"http://127.0.0.1:{port}/health"
    else:
        cmd = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--port",
            str(port),
            "--n_ctx",
            str(profile.n_ctx),
            "--n_threads",
            threads,
            "--n_threads_batch",
            threads,
            "--n_batch",
            str(profile.n_batch),
            "--verbose",
            "False",
        ]
        health = f"http://127.0.0.1:{port}/v1/models"
    cmd = [*cmd, *extra]
    with server_process(cmd, health, log_dir / f"{kind}-server.log", env) as proc:
        yield Served(kind, f"http://127.0.0.1:{port}", proc)


def stream_completion(
    base_url: str, prompt: str, max_tokens: int, model: str = "default", api_key: str | None = None
) -> tuple[str, list[float], int | None]:
    """Stream a greedy /v1/completions from the server root ``base_url`` through ``UpstreamClient``;
    return (text, arrival times of non-empty chunks, usage tokens if sent)."""
    body = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    times: list[float] = []
    parts: list[str] = []
    usage = None
    client = UpstreamClient(base_url, api_key=api_key, read_timeout_s=600)
    try:
        with client.stream("/v1/completions", body) as r:
            assert r is not None  # None only when cancelled
            for line in r.iter_lines():
                data = line[5:].strip() if line.startswith("data:") else ""
                if not data or data == "[DONE]":
                    continue
                doc = json.loads(data)
                if doc.get("usage"):
                    usage = doc["usage"].get("completion_tokens")
                for choice in doc.get("choices") or []:
                    text = choice.get("text") or ""
                    if text:
                        times.append(time.perf_counter())
                        parts.append(text)
    finally:
        client.close()
    return "".join(parts), times, usage
