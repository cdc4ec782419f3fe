"""Time to first token by prompt length, every prompt cold."""

from __future__ import annotations

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import GREEDY, BenchContext, open_model
from cgstudio.bench.stats import summarize


def run(bc: BenchContext) -> None:
    m = open_model(bc.path, bc.profile, n_parallel=1)
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
