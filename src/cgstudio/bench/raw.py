"""The baseline: the tightest greedy decode loop llama-cpp-python allows, on its low-level API."""

from __future__ import annotations

import time
from pathlib import Path

import llama_cpp as lc

from cgstudio.bench.stats import summarize
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp.handle import ContextHandle, ModelHandle
from cgstudio.engine.llamacpp.scheduler import put_token


class RawLoop:
    """One model, one context, one sequence, greedy: no scheduler, no pipeline, no detokenizing."""

    def __init__(self, path: Path, profile: LoadProfile) -> None:
        single = profile.model_copy(update={"n_parallel": 1})
        self.model = ModelHandle(path, single)
        self.context = ContextHandle(self.model, single)
        self.n_batch = single.n_batch

    def run(self, tokens: list[int], max_tokens: int) -> tuple[list[int], float | None, float]:
        """Decode greedily; return (tokens, generation tok/s over tokens after the first, prompt seconds)."""
        ctx = self.context.ctx
        lc.llama_memory_clear(self.context.memory, True)
        params = lc.llama_sampler_chain_default_params()
        smpl = lc.llama_sampler_chain_init(params)
        lc.llama_sampler_chain_add(smpl, lc.llama_sampler_init_greedy())
        try:
            t0 = time.perf_counter()
            for i in range(0, len(tokens), self.n_batch):
                chunk = tokens[i : i + self.n_batch]
                arr = (lc.llama_token * len(chunk))(*chunk)
                if lc.llama_decode(ctx, lc.llama_batch_get_one(arr, len(chunk))) != 0:
                    raise RuntimeError("raw loop: llama_decode failed on the prompt")
            out: list[int] = []
            first = last = None
            prompt_s = time.perf_counter() - t0
            one = (lc.llama_token * 1)()
            while len(out) < max_tokens:
                tok = lc.llama_sampler_sample(smpl, ctx, -1)
                now = time.perf_counter()
                first = first or now
                last = now
                if lc.llama_vocab_is_eog(self.model.vocab, tok):
                    break
                out.append(tok)
                one[0] = tok
                if lc.llama_decode(ctx, lc.llama_batch_get_one(one, 1)) != 0:
                    raise RuntimeError("raw loop: llama_decode failed")
            rate = (
                (len(out) - 1) / (last - first) if len(out) >= 2 and first and last and last > first else None
            )
            return out, rate, prompt_s
        finally:
            lc.llama_sampler_free(smpl)

    def close(self) -> None:
        self.context.close()
        self.model.close()


def batched_step_rates(
    path: Path, profile: LoadProfile, streams: list[int], steps: int = 24
) -> dict[int, float]:
    """The ceiling of continuous batching: tok/s of bare ``llama_decode`` steps that advance n
    sequences by one token each (no sampling, no threads, no queues), for each n in ``streams``."""
    top = max(streams)
    prof = profile.model_copy(update={"n_parallel": top})
    model = ModelHandle(path, prof)
    context = ContextHandle(model, prof)
    batch = lc.llama_batch_init(max(64, top), 0, 1)
    prompt = 32
    try:
        rates: dict[int, float] = {}
        for n in streams:
            lc.llama_memory_clear(context.memory, True)
            for s in range(n):  # a short prompt per sequence, then one-token steps for all of them
                for i in range(prompt):
                    put_token(batch, i, 1000 + i + s, i, s, i == prompt - 1)
                batch.n_tokens = prompt
                if lc.llama_decode(context.ctx, batch) != 0:
                    raise RuntimeError("raw batched steps: llama_decode failed on a prompt")
            times = []
            for k in range(steps):
                for s in range(n):
                    put_token(batch, s, 2000 + k + s, prompt + k, s, True)
                batch.n_tokens = n
                t0 = time.perf_counter()
                if lc.llama_decode(context.ctx, batch) != 0:
                    raise RuntimeError("raw batched steps: llama_decode failed")
                times.append(time.perf_counter() - t0)
            rates[n] = n / summarize(times).median
        return rates
    finally:
        lc.llama_batch_free(batch)
        context.close()
        model.close()
