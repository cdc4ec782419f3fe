"""Streaming tok/s and TTFT through cgstudio in front of an upstream vs calling it directly."""

from __future__ import annotations

import sys
import time

from cgstudio.bench.context import BenchContext
from cgstudio.bench.http import stream_completion
from cgstudio.bench.stats import summarize
from cgstudio.engine.remote.client import UpstreamClient
from cgstudio.testing.subprocess_server import free_port, server_process

REMOTE_PROMPT = (
    "# A command-line todo manager: argparse subcommands, an sqlite store, and tests.\n\n"
    "import argparse\nimport sqlite3\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Todo:\n"
)


def run(bc: BenchContext) -> None:
    """Streaming tok/s and TTFT through cgstudio in front of ``bc.upstream`` vs calling it directly.

    Both sides get the same text prompt (no special tokens, greedy) on /v1/completions; cgstudio's
    side runs in its own process (``serve --backend openai``), as deployed. Trials interleave.
    """
    if bc.upstream is None:
        raise ValueError("the remote bench section needs an upstream (--base-url URL)")
    upstream = bc.upstream
    root = upstream.base_url.rstrip("/").removesuffix("/v1")
    client = UpstreamClient(root, api_key=upstream.api_key, read_timeout_s=30)
    try:
        models = client.json("GET", "/v1/models")["data"]
    finally:
        client.close()
    upstream_model = models[0]["id"]
    port = free_port()
    cmd = [sys.executable, "-m", "cgstudio.cli.main", "serve", "--backend", "openai", "--base-url", root]
    cmd += ["--port", str(port), "--ctx-size", str(bc.profile.n_ctx), "--parallel", "1"]
    if upstream.tokenizer is not None:
        cmd += ["--tokenizer", str(upstream.tokenizer)]
    env = {"CGSTUDIO_UPSTREAM_API_KEY": upstream.api_key} if upstream.api_key else {}
    front = f"http://127.0.0.1:{port}"
    n = max(3, bc.plan.http_trials)
    ours: list[float] = []
    theirs: list[float] = []
    ttft_ours: list[float] = []
    ttft_theirs: list[float] = []
    with server_process(cmd, front + "/health", bc.log_dir / "cgstudio-front.log", env):

        def trial(url: str, model: str, key: str | None) -> tuple[float | None, float | None]:
            return _timed_stream(url, model, bc.plan.tg_tokens, key)

        trial(front, "default", None)  # warm-up: the front loads its tokenizer, the upstream its cache
        trial(root, upstream_model, upstream.api_key)
        for i in range(n):
            bc.progress(f"remote streaming trial {i + 1}/{n}")
            ta, ra = trial(front, "default", None)
            tb, rb = trial(root, upstream_model, upstream.api_key)
            if ra and rb:
                ours.append(ra)
                theirs.append(rb)
            if ta is not None and tb is not None:
                ttft_ours.append(ta)
                ttft_theirs.append(tb)
    bc.results["remote"] = {
        "upstream": root,
        "upstream_model": upstream_model,
        "tokens_per_trial": bc.plan.tg_tokens,
        "front_stream_tok_s": summarize(ours).as_dict(),
        "upstream_stream_tok_s": summarize(theirs).as_dict(),
        "front_ttft_s": summarize(ttft_ours).as_dict(),
        "upstream_ttft_s": summarize(ttft_theirs).as_dict(),
    }
    bc.record_ratio("remote_stream_vs_upstream", ours, theirs)


def _timed_stream(
    base_url: str, model: str, max_tokens: int, api_key: str | None
) -> tuple[float | None, float | None]:
    """(time to first text, tokens/s after the first) of one greedy streamed /v1/completions."""
    t0 = time.perf_counter()
    _, times, usage = stream_completion(base_url, REMOTE_PROMPT, max_tokens, model, api_key)
    if len(times) < 2:
        return (times[0] - t0 if times else None), None
    # One event per token on both sides (llama_cpp.server and vLLM stream per token; so does cgstudio).
    n = usage or len(times)
    return times[0] - t0, (n - 1) / (times[-1] - times[0])
