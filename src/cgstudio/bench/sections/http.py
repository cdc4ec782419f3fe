"""Client-side streaming tok/s: our server, llama_cpp.server and the raw loop, interleaved; then
typed-ahead on our server (``bench/typed_ahead.py``): ``typed_ahead_hit_ms_p50``."""

from __future__ import annotations

import httpx

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import BenchContext, open_model
from cgstudio.bench.http import serve, stream_completion
from cgstudio.bench.raw import RawLoop
from cgstudio.bench.stats import summarize
from cgstudio.bench.traces import EXACT_REUSE, typing_traces
from cgstudio.bench.typed_ahead import TypedAheadRun, http_post, measure
from cgstudio.generation.request import GenerationRequest


def run(bc: BenchContext) -> None:
    """Client-side streaming tok/s: our server, llama_cpp.server and the raw loop, interleaved."""
    plan = bc.plan
    m = open_model(bc.path, bc.profile, n_parallel=1)
    raw = RawLoop(bc.path, bc.profile)
    try:
        prompt, _ = m.prompt(GenerationRequest("chat", messages=wl.GENERATION_MESSAGES))
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
            serve("cgstudio", bc.path, bc.profile, bc.log_dir) as a,
            serve("llama_cpp", bc.path, bc.profile, bc.log_dir) as b,
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
            bc.progress("typed-ahead: typing the ghost texts")
            ahead = _typed_ahead(a.base_url, plan.http_trials, plan.quick)
        bc.results["http"] = {
            "cgstudio_stream_tok_s": summarize(ours).as_dict(),
            "llama_cpp_server_stream_tok_s": summarize(theirs).as_dict(),
            "raw_loop_tok_s": summarize(raws).as_dict(),
            **rss,
        }
        bc.results["typed_ahead"] = {
            "ghost_texts": ahead.ghosts,
            "cursors_without_one": ahead.cursors_skipped,
            "hit_ms": summarize(ahead.hit_ms).as_dict(),
            "typed_but_engine_ms": summarize(ahead.miss_ms).as_dict(),
            "ghost_from_engine_ms": summarize(ahead.ghost_ms).as_dict(),
        }
        bc.record_values("typed_ahead_hit_ms_p50", ahead.hit_ms)
        bc.record_ratio("http_stream_vs_raw_llama_cpp", ours, raws)
        bc.record_ratio("http_stream_vs_llama_cpp_server", ours, theirs)
    finally:
        raw.close()


def _typed_ahead(base_url: str, cursors: int, quick: bool) -> TypedAheadRun:
    """Typed-ahead at the first cursor of ``cursors`` traces where exact reuse applies."""
    opens = [
        (t.steps[0].prefix, t.steps[0].suffix) for t in typing_traces(quick=quick) if t.name in EXACT_REUSE
    ]
    with httpx.Client(base_url=base_url, timeout=600) as client:
        return measure(http_post(client), opens[:cursors])
