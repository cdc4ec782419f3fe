"""Client-side streaming tok/s: our server, llama_cpp.server and the raw loop, interleaved."""

from __future__ import annotations

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import BenchContext, open_model
from cgstudio.bench.http import serve, stream_completion
from cgstudio.bench.raw import RawLoop
from cgstudio.bench.stats import summarize
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
        bc.results["http"] = {
            "cgstudio_stream_tok_s": summarize(ours).as_dict(),
            "llama_cpp_server_stream_tok_s": summarize(theirs).as_dict(),
            "raw_loop_tok_s": summarize(raws).as_dict(),
            **rss,
        }
        bc.record_ratio("http_stream_vs_raw_llama_cpp", ours, raws)
        bc.record_ratio("http_stream_vs_llama_cpp_server", ours, theirs)
    finally:
        raw.close()
