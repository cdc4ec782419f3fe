"""The bench sections. Each returns plain dicts; ``report`` turns them into JSON, markdown and plots.

Every comparison interleaves its two sides trial by trial (A B A B ...), on the same model and
load parameters, and reports the median ratio with its min-max spread.
"""

from __future__ import annotations

import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cgstudio.api import CodeModel
from cgstudio.bench import workloads as wl
from cgstudio.bench.raw import RawLoop, batched_step_rates
from cgstudio.bench.stats import Ratio, percentile, ratio, summarize
from cgstudio.engine.base import DecodeRequest, SamplerConfig
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.settings import LoadProfile, Settings, load_settings

TARGETS = {
    "decode_vs_raw_llama_cpp": 0.97,
    "http_stream_vs_raw_llama_cpp": 0.95,
    "http_stream_vs_llama_cpp_server": 1.0,
    "keystroke_ttft_speedup": 50.0,
    "concurrency_4_vs_1_throughput": 2.5,
    "speculation_speedup": 1.5,
    "remote_stream_vs_upstream": 0.95,
}
GREEDY = {"temperature": 0.0}


@dataclass
class Plan:
    quick: bool
    trials: int
    tg_tokens: int
    pp_tokens: int
    ttft_lengths: list[int]
    keystroke_tokens: int
    keystrokes: int
    cold_keystrokes: int
    concurrency: list[int]
    conc_tokens: int
    spec_tokens: int
    http_trials: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 2, 48, 256, [128, 512], 600, 5, 2, [1, 4], 24, 96, 2)
        return cls(False, 5, 128, 512, [128, 512, 1024, 2048], 2000, 20, 8, [1, 2, 4, 8], 64, 256, 4)


@dataclass
class BenchContext:
    path: Path
    profile: LoadProfile
    plan: Plan
    progress: Callable[[str], None]
    results: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, Ratio] = field(default_factory=dict)


def _model(path: Path, profile: LoadProfile, **update: Any) -> CodeModel:
    settings: Settings = load_settings({"load": profile.model_copy(update=update).model_dump()})
    return CodeModel(LlamaCppEngine(path, settings.load), settings, path.stem)


def _ratio(bc: BenchContext, key: str, numer: list[float], denom: list[float]) -> None:
    bc.ratios[key] = Ratio(key, ratio(numer, denom), TARGETS.get(key))


def run_decode(bc: BenchContext) -> None:
    """pp and tg through our pipeline against the raw loop, interleaved."""
    plan = bc.plan
    m = _model(bc.path, bc.profile, n_parallel=1)
    raw = RawLoop(bc.path, bc.profile)
    try:
        gen_prompt, _ = m.prompt_chat(wl.GENERATION_MESSAGES)
        ours_tg: list[float] = []
        raw_tg: list[float] = []
        ours_pp: list[float] = []
        same_tokens = []
        m.chat(wl.GENERATION_MESSAGES, sampling={**GREEDY, "max_tokens": 8})  # warm-up
        raw.run(gen_prompt.tokens, 8)
        for i in range(plan.trials):
            bc.progress(f"decode trial {i + 1}/{plan.trials}")
            chunks = list(
                m.stream_chat(
                    wl.GENERATION_MESSAGES,
                    sampling={
                        **GREEDY,
                        "max_tokens": plan.tg_tokens,
                        "speculative": False,
                        "cache_prompt": False,
                    },
                )
            )
            r = chunks[-1].result
            assert r is not None
            raw_tokens, raw_rate, _ = raw.run(gen_prompt.tokens, plan.tg_tokens)
            if r.timings.generation_tokens_per_s and raw_rate:
                ours_tg.append(r.timings.generation_tokens_per_s)
                raw_tg.append(raw_rate)
            same_tokens.append(len(raw_tokens) == r.usage.completion_tokens)
            pp_text = wl.cold_marker() + wl.code_of_tokens(m.vocab, plan.pp_tokens, "textwrap")
            pr = m.complete(pp_text, "", sampling={**GREEDY, "max_tokens": 1, "cache_prompt": False})
            if pr.timings.prompt_tokens_per_s:
                ours_pp.append(pr.timings.prompt_tokens_per_s)
        bc.results["decode"] = {
            f"tg{plan.tg_tokens}_tok_s": summarize(ours_tg).as_dict(),
            f"raw_tg{plan.tg_tokens}_tok_s": summarize(raw_tg).as_dict(),
            f"pp{plan.pp_tokens}_tok_s": summarize(ours_pp).as_dict(),
            "same_token_count_as_raw": all(same_tokens),
        }
        bc.results["raw_tg_samples"] = raw_tg
        _ratio(bc, "decode_vs_raw_llama_cpp", ours_tg, raw_tg)
    finally:
        raw.close()
        m.close()


def run_ttft(bc: BenchContext) -> None:
    m = _model(bc.path, bc.profile, n_parallel=1)
    try:
        rows = []
        for n in bc.plan.ttft_lengths:
            bc.progress(f"TTFT at {n} prompt tokens")
            vals = []
            for _ in range(max(2, bc.plan.trials // 2)):
                text = wl.cold_marker() + wl.code_of_tokens(m.vocab, n, "pathlib")
                # cache_prompt off: the marker defeats prefix reuse, not the shifted-chunk reuse.
                r = m.complete(text, "", sampling={**GREEDY, "max_tokens": 2, "cache_prompt": False})
                if r.timings.time_to_first_token_s is not None:
                    vals.append(r.timings.time_to_first_token_s)
            rows.append({"prompt_tokens": n, "ttft_s": summarize(vals).as_dict()})
        bc.results["ttft_by_prompt_length"] = rows
    finally:
        m.close()


def run_keystroke(bc: BenchContext) -> None:
    """20 keystrokes at the cursor of a real file, one FIM request each: cold versus reuse."""
    plan = bc.plan
    m = _model(bc.path, bc.profile, n_parallel=1)
    try:
        if not m.fim_capable:
            bc.results["keystroke"] = {"skipped": "the model has no FIM tokens"}
            return
        case = wl.keystroke_case(m.vocab, plan.keystroke_tokens, plan.keystrokes)
        n_keys = len(case.typed)
        cold_at = set(range(0, n_keys, max(1, n_keys // plan.cold_keystrokes))[: plan.cold_keystrokes])
        params = {**GREEDY, "max_tokens": 16, "speculative": False}
        guards = {"fim_stop_at_suffix": False}
        m.complete(*case.request(0), path=case.path, sampling=params, guards=guards)  # warm the cache
        warm_ttft: list[float] = []
        cold_ttft: list[float] = []
        agree: list[bool] = []
        agree_prefix_only: list[bool] = []
        evaluated: list[int] = []
        prompt_tokens = 0
        for i in range(1, n_keys):
            bc.progress(f"keystroke {i}/{n_keys - 1}")
            prefix, suffix = case.request(i)
            r = m.complete(prefix, suffix, path=case.path, sampling=params, guards=guards)
            prompt_tokens = r.usage.prompt_tokens
            if r.timings.time_to_first_token_s is not None:
                warm_ttft.append(r.timings.time_to_first_token_s)
            evaluated.append(r.timings.prompt_tokens_evaluated)
            if i in cold_at:
                c = m.complete(
                    prefix, suffix, path=case.path, sampling={**params, "cache_prompt": False}, guards=guards
                )
                if c.timings.time_to_first_token_s is not None:
                    cold_ttft.append(c.timings.time_to_first_token_s)
                # Output agreement, on token ids from the engine (no post-processing): the shifted
                # reuse an editor gets, and as a control prefix-only reuse (the suffix evaluated
                # again), each from the previous keystroke's cache, against a cold run. When the
                # control disagrees as often, the cause is llama.cpp's batch-shape rounding (a
                # prompt evaluated in other chunks), not the shifted KV.
                cold_ids = _fim_ids(m, prefix, suffix, case.path, cache=False)
                m.complete(*case.request(i - 1), path=case.path, sampling=params, guards=guards)
                agree.append(_fim_ids(m, prefix, suffix, case.path) == cold_ids)
                m.complete(*case.request(i - 1), path=case.path, sampling=params, guards=guards)
                agree_prefix_only.append(_fim_ids(m, prefix, suffix, case.path, reuse_min=0) == cold_ids)
                # Put the warm cache back for the next keystroke, as an editor's stream would have it.
                m.complete(prefix, suffix, path=case.path, sampling=params, guards=guards)
        cold_p50, warm_p50 = percentile(cold_ttft, 50), percentile(warm_ttft, 50)
        bc.results["keystroke"] = {
            "file": f"argparse.py (first ~{plan.keystroke_tokens} tokens) from the standard library",
            "prompt_tokens": prompt_tokens,
            "keystrokes": n_keys - 1,
            "cold_ttft_s": {"p50": cold_p50, "p95": percentile(cold_ttft, 95), "n": len(cold_ttft)},
            "reuse_ttft_s": {"p50": warm_p50, "p95": percentile(warm_ttft, 95), "n": len(warm_ttft)},
            "reuse_prompt_tokens_evaluated": summarize([float(e) for e in evaluated]).as_dict(),
            "output_agreement_vs_cold": {"equal": sum(agree), "n": len(agree)},
            "prefix_only_reuse_agreement_vs_cold": {
                "equal": sum(agree_prefix_only),
                "n": len(agree_prefix_only),
            },
        }
        # Each cold trial is paired with the reuse p50: the spread shows the cold side's variation.
        _ratio(bc, "keystroke_ttft_speedup", cold_ttft, [warm_p50] * len(cold_ttft))
    finally:
        m.close()


def _fim_ids(
    m: CodeModel, prefix: str, suffix: str, path: str, *, cache: bool = True, reuse_min: int | None = None
) -> list[int]:
    """The token ids of a FIM completion (16 tokens, greedy, no speculation), from the engine."""
    prompt, _ = m.prompt_complete(prefix, suffix, path=path)
    req = DecodeRequest(
        tokens=prompt.tokens,
        max_tokens=16,
        sampler=SamplerConfig(temperature=0.0),
        stop_ids=prompt.stop_ids,
        cache=cache,
        reuse_min=reuse_min,
        speculative=False,
    )
    return [t for t in m.engine.stream(req) if isinstance(t, int)]


def run_concurrency(bc: BenchContext) -> None:
    plan = bc.plan
    top = max(plan.concurrency)
    conc_profile = bc.profile.model_copy(update={"n_ctx": 1024, "n_parallel": top})
    m = _model(bc.path, conc_profile)
    ceiling: list[float] = []  # what llama.cpp itself gives: 4-sequence step rate / 1-sequence
    try:
        agg: dict[int, list[float]] = {n: [] for n in plan.concurrency}
        per: dict[int, list[float]] = {n: [] for n in plan.concurrency}
        m.complete("def warm():\n", "", sampling={**GREEDY, "max_tokens": 4})
        for trial in range(max(2, plan.trials // 2)):
            for n in plan.concurrency:  # interleaved: 1 2 4 8 1 2 4 8 ...
                bc.progress(f"concurrency {n} (trial {trial + 1})")
                results: list[Any] = [None] * n

                def worker(i: int, results: list[Any] = results) -> None:
                    p = wl.cold_marker() + wl.CONCURRENCY_PROMPTS[i % len(wl.CONCURRENCY_PROMPTS)]
                    results[i] = m.complete(
                        p,
                        "",
                        sampling={
                            **GREEDY,
                            "max_tokens": plan.conc_tokens,
                            "speculative": False,
                            "cache_prompt": False,
                        },
                        guards={"repetition": False},
                    )

                t0 = time.perf_counter()
                threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
                total = sum(r.usage.completion_tokens for r in results)
                agg[n].append(total / wall)
                per[n].extend(r.timings.generation_tokens_per_s or 0.0 for r in results)
            if 1 in plan.concurrency and 4 in plan.concurrency:
                bc.progress(f"concurrency ceiling: bare llama_decode steps (trial {trial + 1})")
                steps = batched_step_rates(bc.path, conc_profile, [1, 4])
                ceiling.append(steps[4] / steps[1])
        bc.results["concurrency"] = [
            {
                "streams": n,
                "aggregate_tok_s": summarize(agg[n]).as_dict(),
                "per_stream_tok_s": summarize(per[n]).as_dict(),
            }
            for n in plan.concurrency
        ]
        if ceiling:
            bc.results["concurrency_ceiling"] = {
                "what": "bare llama_decode, 4 sequences a step vs 1 (no prompt, sampling or threads)",
                "raw_step_4_vs_1": summarize(ceiling).as_dict(),
            }
        if 4 in agg and 1 in agg:
            _ratio(bc, "concurrency_4_vs_1_throughput", agg[4], agg[1])
    finally:
        m.close()


def run_speculation(bc: BenchContext) -> None:
    plan = bc.plan
    m = _model(bc.path, bc.profile, n_parallel=1)
    try:
        on: list[float] = []
        off: list[float] = []
        accept: list[float] = []
        same: list[bool] = []
        msgs = wl.edit_messages()
        m.chat(msgs, sampling={**GREEDY, "max_tokens": 4})
        for i in range(max(2, plan.trials // 2 + 1)):
            bc.progress(f"speculation trial {i + 1}")
            a = m.chat(msgs, sampling={**GREEDY, "max_tokens": plan.spec_tokens, "speculative": True})
            b = m.chat(msgs, sampling={**GREEDY, "max_tokens": plan.spec_tokens, "speculative": False})
            # Decode speed as the user sees it: tokens over the time after the first one.
            if a.timings.generation_tokens_per_s and b.timings.generation_tokens_per_s:
                on.append(a.timings.generation_tokens_per_s)
                off.append(b.timings.generation_tokens_per_s)
            if a.timings.draft_tokens:
                accept.append(a.timings.draft_tokens_accepted / a.timings.draft_tokens)
            same.append(a.text == b.text)
        bc.results["speculation"] = {
            "workload": "edit: add type hints to a 19-line function (chat, greedy)",
            "on_tok_s": summarize(on).as_dict(),
            "off_tok_s": summarize(off).as_dict(),
            "draft_acceptance": summarize(accept).as_dict(),
            "same_output": all(same),
        }
        _ratio(bc, "speculation_speedup", on, off)
    finally:
        m.close()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_http(bc: BenchContext, log_dir: Path) -> None:
    """Client-side streaming tok/s: our server, llama_cpp.server and the raw loop, interleaved."""
    from cgstudio.bench.http import serve, stream_completion

    plan = bc.plan
    m = _model(bc.path, bc.profile, n_parallel=1)
    raw = RawLoop(bc.path, bc.profile)
    try:
        prompt, _ = m.prompt_chat(wl.GENERATION_MESSAGES)
        text = m.vocab.render(prompt.tokens)
        m.close()

        def rate(base: str) -> float | None:
            out, times, usage = stream_completion(base, text, plan.tg_tokens)
            n = usage or len(raw.model.tokenize(out.encode(), parse_special=False))
            if n < 2 or len(times) < 2 or times[-1] <= times[0]:
                return None
            # Both servers stream one token per event: tokens after the first, over the time after it.
            return (n - 1) / (times[-1] - times[0])

        ours: list[float] = []
        theirs: list[float] = []
        raws: list[float] = []
        rss: dict[str, float] = {}
        with (
            serve("cgstudio", bc.path, bc.profile, log_dir) as a,
            serve("llama_cpp", bc.path, bc.profile, log_dir) as b,
        ):
            rate(a.base_url)
            rate(b.base_url)
            for i in range(plan.http_trials):
                bc.progress(f"HTTP streaming trial {i + 1}/{plan.http_trials}")
                ra, rb = rate(a.base_url), rate(b.base_url)
                _, rr, _ = raw.run(prompt.tokens, plan.tg_tokens)
                if ra and rb and rr:
                    ours.append(ra)
                    theirs.append(rb)
                    raws.append(rr)
            rss = {"cgstudio_server_rss_mib": a.rss_mib(), "llama_cpp_server_rss_mib": b.rss_mib()}
        bc.results["http"] = {
            "cgstudio_stream_tok_s": summarize(ours).as_dict(),
            "llama_cpp_server_stream_tok_s": summarize(theirs).as_dict(),
            "raw_loop_tok_s": summarize(raws).as_dict(),
            **rss,
        }
        _ratio(bc, "http_stream_vs_raw_llama_cpp", ours, raws)
        _ratio(bc, "http_stream_vs_llama_cpp_server", ours, theirs)
    finally:
        raw.close()


REMOTE_PROMPT = (
    "# A command-line todo manager: argparse subcommands, an sqlite store, and tests.\n\n"
    "import argparse\nimport sqlite3\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Todo:\n"
)


def run_remote(
    bc: BenchContext,
    base_url: str,
    log_dir: Path,
    *,
    tokenizer: Path | None = None,
    api_key: str | None = None,
) -> None:
    """Streaming tok/s and TTFT through cgstudio in front of ``base_url`` vs calling it directly.

    Both sides get the same text prompt (no special tokens, greedy) on /v1/completions; cgstudio's
    side runs in its own process (``serve --backend openai``), as deployed. Trials interleave.
    """
    import os
    import subprocess
    import sys

    import httpx

    from cgstudio.bench.http import _wait, free_port

    root = base_url.rstrip("/").removesuffix("/v1")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    models = httpx.get(root + "/v1/models", headers=headers, timeout=30).json()["data"]
    upstream_model = models[0]["id"]
    port = free_port()
    cmd = [sys.executable, "-m", "cgstudio.cli.main", "serve", "--backend", "openai", "--base-url", root]
    cmd += ["--port", str(port), "--ctx-size", str(bc.profile.n_ctx), "--parallel", "1"]
    if tokenizer is not None:
        cmd += ["--tokenizer", str(tokenizer)]
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        **({"CGSTUDIO_UPSTREAM_API_KEY": api_key} if api_key else {}),
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / "cgstudio-front.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    front = f"http://127.0.0.1:{port}"
    n = max(3, bc.plan.http_trials)
    ours: list[float] = []
    theirs: list[float] = []
    ttft_ours: list[float] = []
    ttft_theirs: list[float] = []
    try:
        _wait(front + "/health", proc)

        def trial(url: str, model: str, extra: dict[str, str]) -> tuple[float | None, float | None]:
            return _timed_stream(url, model, bc.plan.tg_tokens, extra)

        trial(front, "default", {})  # warm-up: the front loads its tokenizer, the upstream its cache
        trial(root, upstream_model, headers)
        for i in range(n):
            bc.progress(f"remote streaming trial {i + 1}/{n}")
            ta, ra = trial(front, "default", {})
            tb, rb = trial(root, upstream_model, headers)
            if ra and rb:
                ours.append(ra)
                theirs.append(rb)
            if ta is not None and tb is not None:
                ttft_ours.append(ta)
                ttft_theirs.append(tb)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    bc.results["remote"] = {
        "upstream": root,
        "upstream_model": upstream_model,
        "tokens_per_trial": bc.plan.tg_tokens,
        "front_stream_tok_s": summarize(ours).as_dict(),
        "upstream_stream_tok_s": summarize(theirs).as_dict(),
        "front_ttft_s": summarize(ttft_ours).as_dict(),
        "upstream_ttft_s": summarize(ttft_theirs).as_dict(),
    }
    _ratio(bc, "remote_stream_vs_upstream", ours, theirs)


def _timed_stream(
    base_url: str, model: str, max_tokens: int, headers: dict[str, str]
) -> tuple[float | None, float | None]:
    """(time to first text, tokens/s after the first) of one greedy streamed /v1/completions."""
    import json

    import httpx

    body = {
        "model": model,
        "prompt": REMOTE_PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    times: list[float] = []
    usage = None
    t0 = time.perf_counter()
    with httpx.stream("POST", base_url + "/v1/completions", json=body, headers=headers, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            data = line[5:].strip() if line.startswith("data:") else ""
            if not data or data == "[DONE]":
                continue
            doc = json.loads(data)
            if doc.get("usage"):
                usage = doc["usage"].get("completion_tokens")
            if any(c.get("text") for c in doc.get("choices") or []):
                times.append(time.perf_counter())
    if len(times) < 2:
        return (times[0] - t0 if times else None), None
    # One event per token on both sides (llama_cpp.server and vLLM stream per token; so does cgstudio).
    n = usage or len(times)
    return times[0] - t0, (n - 1) / (times[-1] - times[0])
