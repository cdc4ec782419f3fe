"""pp and tg through our pipeline against the raw llama.cpp loop, interleaved.

tg is measured twice a trial: with speculation off (``decode_vs_raw_llama_cpp``) and with the
load profile's default (``decode_default_vs_raw_llama_cpp``: "auto", what users get), so that a
default that drafts where drafts are not accepted shows as a cost.
"""

from __future__ import annotations

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import GREEDY, BenchContext, open_model
from cgstudio.bench.raw import RawLoop
from cgstudio.bench.stats import summarize
from cgstudio.generation.pipeline import Result
from cgstudio.generation.request import GenerationRequest
from cgstudio.session.model import CodeModel


def run(bc: BenchContext) -> None:
    """pp and tg through our pipeline against the raw loop, interleaved."""
    plan = bc.plan
    m = open_model(bc.path, bc.profile, n_parallel=1)
    raw = RawLoop(bc.path, bc.profile)
    try:
        gen_prompt, _ = m.prompt(GenerationRequest("chat", messages=wl.GENERATION_MESSAGES))
        ours_tg: list[float] = []
        default_tg: list[float] = []
        default_raw: list[float] = []  # raw_tg's trials paired with default_tg
        raw_tg: list[float] = []
        ours_pp: list[float] = []
        same_tokens = []
        m.chat(wl.GENERATION_MESSAGES, sampling={**GREEDY, "max_tokens": 8})  # warm-up
        raw.run(gen_prompt.tokens, 8)
        for i in range(plan.trials):
            bc.progress(f"decode trial {i + 1}/{plan.trials}")
            chunks = list(
                m.stream(
                    GenerationRequest(
                        "chat",
                        messages=wl.GENERATION_MESSAGES,
                        sampling={
                            **GREEDY,
                            "max_tokens": plan.tg_tokens,
                            "speculative": False,
                            "cache_prompt": False,
                        },
                    )
                )
            )
            r = chunks[-1].result
            assert r is not None
            raw_tokens, raw_rate, _ = raw.run(gen_prompt.tokens, plan.tg_tokens)
            if r.timings.generation_tokens_per_s and raw_rate:
                ours_tg.append(r.timings.generation_tokens_per_s)
                raw_tg.append(raw_rate)
            same_tokens.append(len(raw_tokens) == r.usage.completion_tokens)
            d = _generate(m, {**GREEDY, "max_tokens": plan.tg_tokens, "cache_prompt": False})
            if d.timings.generation_tokens_per_s and raw_rate:
                default_tg.append(d.timings.generation_tokens_per_s)
                default_raw.append(raw_rate)
            pp_text = wl.cold_marker() + wl.code_of_tokens(m.vocab, plan.pp_tokens, "textwrap")
            pr = m.complete(pp_text, "", sampling={**GREEDY, "max_tokens": 1, "cache_prompt": False})
            if pr.timings.prompt_tokens_per_s:
                ours_pp.append(pr.timings.prompt_tokens_per_s)
        bc.results["decode"] = {
            f"tg{plan.tg_tokens}_tok_s": summarize(ours_tg).as_dict(),
            f"default_tg{plan.tg_tokens}_tok_s": summarize(default_tg).as_dict(),
            f"raw_tg{plan.tg_tokens}_tok_s": summarize(raw_tg).as_dict(),
            f"pp{plan.pp_tokens}_tok_s": summarize(ours_pp).as_dict(),
            "same_token_count_as_raw": all(same_tokens),
        }
        bc.results["raw_tg_samples"] = raw_tg
        bc.record_ratio("decode_vs_raw_llama_cpp", ours_tg, raw_tg)
        bc.record_ratio("decode_default_vs_raw_llama_cpp", default_tg, default_raw)
    finally:
        raw.close()
        m.close()


def _generate(m: CodeModel, sampling: dict[str, object]) -> Result:
    """One chat generation through the pipeline, with ``sampling`` as given (no speculation key:
    the load profile's default)."""
    chunks = list(m.stream(GenerationRequest("chat", messages=wl.GENERATION_MESSAGES, sampling=sampling)))
    result = chunks[-1].result
    assert result is not None
    return result
