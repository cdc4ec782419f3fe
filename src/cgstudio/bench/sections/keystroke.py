"""Keystrokes at the cursor of a real file, one FIM request each: cold versus cache reuse."""

from __future__ import annotations

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import GREEDY, BenchContext, open_model
from cgstudio.bench.stats import percentile, summarize
from cgstudio.core.engine import DecodeRequest, SamplerConfig
from cgstudio.session.model import CodeModel


def run(bc: BenchContext) -> None:
    """20 keystrokes at the cursor of a real file, one FIM request each: cold versus reuse."""
    plan = bc.plan
    m = open_model(bc.path, bc.profile, n_parallel=1)
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
        bc.record_ratio("keystroke_ttft_speedup", cold_ttft, [warm_p50] * len(cold_ttft))
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
