"""The scheduler owns the llama.cpp context, its KV cache and the decode loop.

Today it serves one sequence at a time behind a lock, reusing the KV cache of the
previous prompt's longest common prefix. The shape is kept for issue 6: each
``_Slot`` is one llama.cpp sequence id with its own token history and sampler, so a
batching loop can advance several slots per ``llama_decode`` without changing callers.
Cancellation is checked between decode steps.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import llama_cpp as lc

from cgstudio.engine.base import DecodeRequest, DecodeStats, EngineCounters, SamplerConfig, TokenStream
from cgstudio.engine.llamacpp.handle import ContextHandle, ModelHandle, llama_log_tail
from cgstudio.errors import CGStudioError, ContextOverflowError


class DecodeError(CGStudioError):
    code = "decode_failed"


@dataclass
class _Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # what the KV cache holds for this sequence


class _Sampler:
    """A native llama.cpp sampler chain: no per-token Python work over the logits."""

    def __init__(self, cfg: SamplerConfig, n_vocab: int) -> None:
        params = lc.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = lc.llama_sampler_chain_init(params)
        if cfg.repeat_penalty != 1.0 and cfg.repeat_last_n > 0:
            lc.llama_sampler_chain_add(
                chain, lc.llama_sampler_init_penalties(n_vocab, cfg.repeat_last_n, cfg.repeat_penalty, 0.0, 0.0)
            )
        if cfg.temperature <= 0.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            if cfg.top_k > 0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(cfg.top_k))
            if cfg.top_p < 1.0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(cfg.top_p, 1))
            if cfg.min_p > 0.0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(cfg.min_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(cfg.temperature))
            seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**32 - 1)
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
        self.chain = chain

    def accept_prompt(self, tokens: list[int]) -> None:
        # The repeat penalty window should see the prompt, as llama.cpp's server does.
        for t in tokens:
            lc.llama_sampler_accept(self.chain, t)

    def sample(self, ctx: object, idx: int) -> int:
        return int(lc.llama_sampler_sample(self.chain, ctx, idx))

    def free(self) -> None:
        if self.chain:
            lc.llama_sampler_free(self.chain)
            self.chain = None


class Scheduler:
    def __init__(self, model: ModelHandle, context: ContextHandle, counters: EngineCounters) -> None:
        self.model = model
        self.context = context
        self.counters = counters
        self.n_ctx = context.n_ctx
        self._lock = threading.Lock()
        self._slot = _Slot(seq_id=0)
        self._batch = lc.llama_batch_init(max(context.n_batch, 1), 0, 1)

    def close(self) -> None:
        if getattr(self, "_batch", None) is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None

    # -- public -------------------------------------------------------------------------------
    def submit(self, request: DecodeRequest) -> TokenStream:
        if len(request.tokens) >= self.n_ctx:
            raise ContextOverflowError(len(request.tokens), self.n_ctx)
        if not request.tokens:
            raise DecodeError("empty prompt: nothing to decode")
        stats = DecodeStats(n_prompt=len(request.tokens))
        return TokenStream(self._run(request, stats), stats)

    # -- internals ----------------------------------------------------------------------------
    def _run(self, req: DecodeRequest, stats: DecodeStats) -> Iterator[int]:
        with self._lock:
            slot = self._slot
            sampler = _Sampler(req.sampler, self.model.n_vocab)
            try:
                t0 = time.perf_counter()
                last_idx = self._load_prompt(slot, req.tokens, stats, req)
                stats.prompt_eval_s = time.perf_counter() - t0
                if stats.finish == "cancelled":
                    return
                if req.sampler.repeat_penalty != 1.0:
                    sampler.accept_prompt(req.tokens[-req.sampler.repeat_last_n :])
                yield from self._generate(slot, sampler, last_idx, req, stats)
            finally:
                sampler.free()

    def _cancelled(self, req: DecodeRequest) -> bool:
        return req.cancel is not None and req.cancel.is_set()

    def _load_prompt(self, slot: _Slot, tokens: list[int], stats: DecodeStats, req: DecodeRequest) -> int:
        """Make the KV cache hold ``tokens[:-1]`` reused or evaluated, evaluate the rest; return logits idx."""
        common = 0
        for a, b in zip(slot.tokens, tokens, strict=False):
            if a != b:
                break
            common += 1
        # Always re-evaluate at least the last prompt token: we need its logits.
        common = min(common, len(tokens) - 1)
        if common < len(slot.tokens):
            lc.llama_memory_seq_rm(self.context.memory, slot.seq_id, common, -1)
            del slot.tokens[common:]
        stats.n_reused = common
        todo = tokens[common:]
        pos = common
        last_idx = 0
        for start in range(0, len(todo), self.context.n_batch):
            if self._cancelled(req):
                stats.finish = "cancelled"
                return 0
            chunk = todo[start : start + self.context.n_batch]
            last_idx = self._decode(slot, chunk, pos, logits_last=True)
            pos += len(chunk)
        stats.n_prompt_evaluated = len(todo)
        return last_idx

    def _decode(self, slot: _Slot, chunk: list[int], pos: int, *, logits_last: bool) -> int:
        b = self._batch
        n = len(chunk)
        for i, tok in enumerate(chunk):
            b.token[i] = tok
            b.pos[i] = pos + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = slot.seq_id
            b.logits[i] = False
        if logits_last:
            b.logits[n - 1] = True
        b.n_tokens = n
        rc = lc.llama_decode(self.context.ctx, b)
        self.counters.decode_calls += 1
        if rc != 0:
            # Keep our view of the cache honest: drop whatever this call may have left.
            lc.llama_memory_seq_rm(self.context.memory, slot.seq_id, pos, -1)
            raise DecodeError(f"llama_decode failed (code {rc}): {llama_log_tail() or 'no detail'}")
        slot.tokens.extend(chunk)
        self.counters.evaluated_tokens += n
        return n - 1

    def _generate(
        self, slot: _Slot, sampler: _Sampler, idx: int, req: DecodeRequest, stats: DecodeStats
    ) -> Iterator[int]:
        ctx = self.context.ctx
        while True:
            if self._cancelled(req):
                stats.finish = "cancelled"
                return
            tok = sampler.sample(ctx, idx)
            if tok in req.stop_ids or lc.llama_vocab_is_eog(self.model.vocab, tok):
                stats.finish = "stop_token"
                stats.stop_token = tok
                return
            stats.n_generated += 1
            self.counters.generated_tokens += 1
            yield tok
            if stats.n_generated >= req.max_tokens:
                stats.finish = "max_tokens"
                return
            if len(slot.tokens) + 1 >= self.n_ctx:
                # No context shift: shifting is what corrupted users' output. Stop instead.
                stats.finish = "context"
                return
            idx = self._decode(slot, [tok], len(slot.tokens), logits_last=True)
