"""Aggregate and per-stream throughput at 1..n concurrent requests, with llama.cpp's own ceiling."""

from __future__ import annotations

import threading
import time
from typing import Any

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import GREEDY, BenchContext, open_model
from cgstudio.bench.raw import batched_step_rates
from cgstudio.bench.stats import summarize


def run(bc: BenchContext) -> None:
    plan = bc.plan
    top = max(plan.concurrency)
    conc_profile = bc.profile.model_copy(update={"n_ctx": 1024, "n_parallel": top})
    m = open_model(bc.path, conc_profile)
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
            bc.record_ratio("concurrency_4_vs_1_throughput", agg[4], agg[1])
    finally:
        m.close()
