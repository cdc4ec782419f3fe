"""Decode speed with prompt-lookup speculation on and off, on an edit that copies its input."""

from __future__ import annotations

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import GREEDY, BenchContext, open_model
from cgstudio.bench.stats import summarize


def run(bc: BenchContext) -> None:
    plan = bc.plan
    m = open_model(bc.path, bc.profile, n_parallel=1)
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
        bc.record_ratio("speculation_speedup", on, off)
    finally:
        m.close()
