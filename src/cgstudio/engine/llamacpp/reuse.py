"""Applying ``kvcache``'s reuse plans to llama.cpp's memory: the ``llama_memory_*`` calls.

``kvcache`` decides what a slot's cache can serve a new prompt (pure); :class:`SlotCache` keeps
those cells, moves a shifted chunk, evaluates the gap in front of it, and falls back to a cold
start when llama.cpp refuses an edit.
"""

from __future__ import annotations

from typing import Any

import llama_cpp as lc

from cgstudio.core.engine import DecodeStats, EngineCounters
from cgstudio.engine.llamacpp.handle import ContextHandle, llama_log_tail
from cgstudio.engine.llamacpp.kvcache import Slot, cold_plan, plan_reuse
from cgstudio.engine.llamacpp.sequence import DecodeError, put_token


class SlotCache:
    """The slots' KV cells in one llama.cpp context. Decode thread only."""

    def __init__(
        self,
        context: ContextHandle,
        counters: EngineCounters,
        batch: Any,
        batch_cap: int,
        scratch: int,
        *,
        shift_reuse: bool,
    ) -> None:
        self.context = context
        self.counters = counters
        self.batch = batch
        self.batch_cap = batch_cap
        self.scratch = scratch  # a sequence id no slot uses, for fill_gap
        if shift_reuse and not context.unified:
            # fill_gap copies part of a slot's cells to the scratch sequence: llama.cpp allows that
            # only within one KV stream, and aborts the process otherwise.
            raise ValueError("shifted reuse needs a context with one unified KV pool (kv_shift_reuse)")
        self.shift_reuse = shift_reuse
        self.can_shift = bool(lc.llama_memory_can_shift(context.memory))

    def reuse(
        self, slot: Slot, prompt: list[int], reuse_min: int, stats: DecodeStats
    ) -> list[tuple[int, int]]:
        """Keep what the slot's cache can serve; return the (token, pos) pairs still to evaluate."""
        mem, sid, cache = self.context.memory, slot.seq_id, slot.tokens
        plan = plan_reuse(
            cache, prompt, reuse_min=reuse_min, can_shift=self.can_shift, shift=self.shift_reuse
        )
        if (chunk := plan.shift) is not None:
            ok = lc.llama_memory_seq_rm(mem, sid, chunk.old_end, -1)
            ok = ok and lc.llama_memory_seq_rm(mem, sid, plan.common, chunk.old_start)
            if ok:
                if chunk.delta:
                    lc.llama_memory_seq_add(mem, sid, chunk.old_start, chunk.old_end, chunk.delta)
                if plan.gap:
                    self.fill_gap(sid, prompt, plan.gap.start, plan.gap.stop)
                slot.tokens = prompt[: chunk.new_start] + cache[chunk.old_start : chunk.old_end]
                stats.n_prompt_evaluated += len(plan.gap)
            else:
                self.clear(slot)
                plan = cold_plan(len(prompt))
        if plan.shift is None:
            if plan.common < len(cache) and not lc.llama_memory_seq_rm(mem, sid, plan.common, -1):
                self.clear(slot)  # e.g. a sliding-window cache that cannot drop a tail
                plan = cold_plan(len(prompt))
            del slot.tokens[plan.common :]
        stats.n_reused = plan.reused
        self.counters.reused_tokens += plan.reused
        return [(prompt[p], p) for p in plan.tail]

    def fill_gap(self, sid: int, prompt: list[int], start: int, end: int) -> None:
        """Evaluate prompt[start:end] in front of a chunk already shifted to position ``end``.

        llama.cpp requires each sequence's new positions to follow its last one, so the gap is
        evaluated on a scratch sequence that shares the prefix cells (unified KV), then its cells
        are added to the real sequence.
        """
        mem, scratch = self.context.memory, self.scratch
        lc.llama_memory_seq_rm(mem, scratch, -1, -1)
        lc.llama_memory_seq_cp(mem, sid, scratch, 0, start)
        try:
            for c0 in range(start, end, self.batch_cap):
                c1 = min(end, c0 + self.batch_cap)
                for i, p in enumerate(range(c0, c1)):
                    put_token(self.batch, i, prompt[p], p, scratch, False)
                self.batch.n_tokens = c1 - c0
                rc = lc.llama_decode(self.context.ctx, self.batch)
                self.counters.decode_calls += 1
                self.counters.evaluated_tokens += c1 - c0
                if rc != 0:
                    raise DecodeError(f"llama_decode failed (code {rc}): {llama_log_tail() or 'no detail'}")
            lc.llama_memory_seq_cp(mem, scratch, sid, start, end)
        finally:
            lc.llama_memory_seq_rm(mem, scratch, -1, -1)

    def clear(self, slot: Slot) -> None:
        lc.llama_memory_seq_rm(self.context.memory, slot.seq_id, -1, -1)
        slot.tokens = []

    def drop_after(self, slot: Slot, keep: int) -> None:
        """Forget the slot's cells from position ``keep`` on (rejected drafts)."""
        if keep < len(slot.tokens):
            lc.llama_memory_seq_rm(self.context.memory, slot.seq_id, keep, -1)
            del slot.tokens[keep:]
