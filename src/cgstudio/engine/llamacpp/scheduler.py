"""The scheduler owns the llama.cpp context, its KV cache and the decode loop.

One background thread runs continuous batching: every step builds one ``llama_batch`` that
advances all active sequences (prompt chunks and generated tokens, each with its own
llama.cpp sequence id), calls ``llama_decode`` once, and samples each sequence with its own
native sampler chain. New requests join between steps; finished or cancelled ones leave.

KV reuse: each slot keeps the tokens its cache holds after a request ends; ``kvcache`` decides
which free slot a request takes and what of its cache the prompt keeps (the exact common prefix;
with ``shift_reuse``, the load setting ``kv_shift_reuse``, also a later chunk shifted to new
positions, which is approximate), and ``reuse`` applies that plan with ``llama_memory_*`` calls.
A request that ends while its prompt is being evaluated (cancelled, superseded, over its
``max_prompt_s``) leaves the part already evaluated in the slot, so the next prompt that shares
it does not evaluate it again.

Priority (``DecodeRequest.priority``): queued requests are admitted most urgent first (FIFO
within a class); each step gives every generating sequence its token and then the prompt rows to
the most urgent active class (``batching``): a FIM keystroke's prompt is never stuck behind a chat
prompt, and while it runs chat prompts wait and generating chats advance one step in four. IDLE
requests (speculative work) are cancelled as soon as any other request is submitted.

Speculation: ``speculative`` proposes prompt-lookup drafts, verified here in the same batch
as the pending token; rejected drafts leave the cache after the step.

Choices (``DecodeRequest.n`` > 1, ``submit_choices``) wait, FIFO, until n slots are free. Choice 0
evaluates the prompt; when its last token is decoded its KV cells are copied to the other
choices' sequences (``llama_memory_seq_cp``: a slot's whole KV stream is copied; with
``--kv-shift-reuse``'s unified pool the cells are shared) and each samples its own first token
from the same logits. n choices cost one prompt evaluation; n <= the slot count.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import llama_cpp as lc

from cgstudio.core.engine import (
    DecodeRequest,
    DecodeStats,
    EngineCounters,
    Priority,
    TokenStream,
    check_choices,
)
from cgstudio.core.errors import CGStudioError, ContextOverflowError, SettingsError
from cgstudio.engine.llamacpp import speculative as spec
from cgstudio.engine.llamacpp.batching import (
    BACKGROUND_CHUNK,
    EDITOR_NEAR_CHUNK,
    EDITOR_RECENT_S,
    prompt_shares,
    yields,
)
from cgstudio.engine.llamacpp.handle import ContextHandle, ModelHandle, llama_log_tail
from cgstudio.engine.llamacpp.healing import Healer, built_index
from cgstudio.engine.llamacpp.kvcache import Slot, choose_slot
from cgstudio.engine.llamacpp.reuse import SlotCache
from cgstudio.engine.llamacpp.sampler import SamplerChain as _Sampler
from cgstudio.engine.llamacpp.sequence import DecodeError, Seq, SeqStream, put_token

__all__ = ["DecodeError", "Scheduler"]

_END = object()


class Scheduler:
    def __init__(
        self,
        model: ModelHandle,
        context: ContextHandle,
        counters: EngineCounters,
        *,
        n_parallel: int = 1,
        reuse_min: int = 32,
        shift_reuse: bool = False,
        speculative: str = "auto",
        background_chunk: int = BACKGROUND_CHUNK,
    ) -> None:
        self.model = model
        self.context = context
        self.counters = counters
        self.n_ctx_seq = context.n_ctx_seq
        self.reuse_min = reuse_min
        self.shift_reuse = shift_reuse
        self.speculative = speculative
        self.background_chunk = background_chunk
        self._editor_seen = -EDITOR_RECENT_S  # when an editor sequence last ran (perf_counter)
        self._slots = [Slot(seq_id=i) for i in range(n_parallel)]
        # With shifted reuse the context has one unified pool and an extra id for SlotCache.fill_gap.
        self._scratch = n_parallel
        self._pending: list[Seq] = []
        self._active: list[Seq] = []
        self._cv = threading.Condition()
        self._stop = False
        # llama_decode asserts (aborts the process) on a batch larger than the context's n_batch, so
        # that is the cap: drafts shrink to fit it and prompts are split into chunks of it.
        self._batch_cap = context.n_batch
        if self._batch_cap < n_parallel:
            raise SettingsError(
                f"the context's batch ({self._batch_cap} tokens) cannot hold one token of each of "
                f"{n_parallel} sequences; raise --batch-size to at least {n_parallel}"
            )
        self._batch = lc.llama_batch_init(self._batch_cap, 0, 1)
        self._cache = SlotCache(
            context, counters, self._batch, self._batch_cap, self._scratch, shift_reuse=shift_reuse
        )
        self._thread = threading.Thread(target=self._loop, name="cgstudio-scheduler", daemon=True)
        self._thread.start()

    @property
    def n_ctx(self) -> int:
        return self.n_ctx_seq

    @property
    def max_choices(self) -> int:
        """Choices of one request decoded at once: one slot each."""
        return len(self._slots)

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        if getattr(self, "_batch", None) is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None

    # -- public -------------------------------------------------------------------------------
    def submit(self, request: DecodeRequest) -> TokenStream:
        return self.submit_choices(replace(request, n=1))[0]

    def submit_choices(self, request: DecodeRequest) -> list[TokenStream]:
        """One stream per choice (``request.n``); the prompt is evaluated once for all of them."""
        if not request.tokens:
            raise DecodeError("empty prompt: nothing to decode")
        if len(request.tokens) >= self.n_ctx_seq:
            raise ContextOverflowError(len(request.tokens), self.n_ctx_seq)
        check_choices(request.n, self.max_choices)
        if self._stop:
            raise DecodeError("the engine is closed")
        t, n = time.perf_counter(), len(request.tokens)
        reqs = [request] if request.n == 1 else [request.for_choice(i) for i in range(request.n)]
        seqs = [Seq(r, DecodeStats(n_prompt=n), queue.SimpleQueue(), threading.Event(), t) for r in reqs]
        leader = seqs[0]
        leader.followers = seqs[1:]
        for f in leader.followers:
            f.leader = leader
        with self._cv:
            if request.priority != Priority.IDLE:  # speculative work yields to any real request
                for s in self._pending + self._active:
                    if s.req.priority == Priority.IDLE:
                        s.closed.set()
            # Most urgent first; FIFO within a priority.
            at = next((i for i, s in enumerate(self._pending) if s.req.priority > request.priority), None)
            self._pending.insert(len(self._pending) if at is None else at, leader)
            self.counters.queued_requests = len(self._pending)
            self._cv.notify_all()
        return [SeqStream(self._consume(s), s, self._release) for s in seqs]

    def _release(self, seq: Seq) -> None:
        """The consumer stopped (done, stop string, disconnect): free the slot next step."""
        seq.closed.set()
        with self._cv:
            self._cv.notify_all()

    def _consume(self, seq: Seq) -> Iterator[int]:
        try:
            while True:
                item = seq.out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self._release(seq)

    # -- the loop -----------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._stop and not self._active and not self._pending:
                    self._cv.wait()
                if self._stop:
                    for seq in self._active + self._pending:
                        self._finish(seq, "cancelled")
                    return
                self._admit()
            try:
                self._step()
            except Exception as exc:  # a decode failure ends the sequences in flight, not the server
                for seq in list(self._active):
                    self._fail(seq, exc)

    def _admit(self) -> None:
        """Move queued requests into free slots (FIFO), choosing the slot with the longest cached match.

        A request with followers (choices) waits until it and each follower have a slot."""
        self._drop_ended()
        while self._pending:
            free = [s for s in self._slots if not s.busy]
            seq = self._pending[0]
            if len(free) < 1 + len(seq.followers):
                break
            self._pending.pop(0)
            if seq.closed.is_set() or self._cancelled(seq):
                self._finish(seq, "cancelled")  # and its followers
                continue
            slot = choose_slot(free, seq.req.tokens)
            # Followers' caches are replaced by the prompt: take the least recently used slots.
            spare = sorted((s for s in free if s is not slot), key=lambda s: s.last_used)
            queued_s = time.perf_counter() - seq.t_submit
            for member, member_slot in zip([seq, *seq.followers], [slot, *spare], strict=False):
                member_slot.busy = True
                member.slot = member_slot
                member.stats.queued_s = queued_s
            try:
                self._prepare(seq, slot)
                for f in seq.followers:
                    self._start_sampling(f)
            except Exception as exc:
                self._fail(seq, exc)  # and its followers
                continue
            self._active.extend([seq, *seq.followers])
        self.counters.queued_requests = len(self._pending)
        self.counters.active_sequences = len(self._active)

    def _prepare(self, seq: Seq, slot: Slot) -> None:
        req = seq.req
        self._start_sampling(seq)
        reuse_min = self.reuse_min if req.reuse_min is None else req.reuse_min
        if not req.cache:
            self._cache.clear(slot)
        seq.t_prefill = time.perf_counter()  # the prompt phase starts: max_prompt_s counts from here
        seq.todo = self._cache.reuse(slot, req.tokens, reuse_min, seq.stats)

    def _start_sampling(self, seq: Seq) -> None:
        """The sequence's sampler chain (it has seen the prompt), speculation state and history."""
        req = seq.req
        healer = Healer(built_index(self.model), req.starts_with) if req.starts_with else None
        seq.sampler = _Sampler(req.sampler, self.model.vocab, req.grammar, healer)
        if req.sampler.repeat_penalty != 1.0:
            seq.sampler.accept(req.tokens[-req.sampler.repeat_last_n :])
        greedy = req.sampler.temperature <= 0.0
        seq.speculate = spec.starts_speculating(self.speculative, req.speculative, greedy)
        seq.history = list(req.tokens)

    def _cancelled(self, seq: Seq) -> bool:
        return seq.req.cancel is not None and seq.req.cancel.is_set()

    def _over_prompt_budget(self, seq: Seq, now: float) -> bool:
        """The prompt is still being evaluated after its ``max_prompt_s`` (checked between steps,
        after at least one step of it)."""
        limit = seq.req.max_prompt_s
        return (
            bool(seq.todo)
            and limit is not None
            and seq.stats.prefill_steps > 0
            and now - seq.t_prefill > limit
        )

    def _drop_ended(self) -> None:
        """End the sequences whose consumer left, that were cancelled or are over their prompt
        time: before each step, and before admitting (a keystroke that comes as the last one's
        answer stops early finds that slot free, not busy, and does not start cold elsewhere)."""
        now = time.perf_counter()
        for seq in list(self._active):
            if seq.closed.is_set() or self._cancelled(seq):
                self._finish(seq, "cancelled")
            elif self._over_prompt_budget(seq, now):
                self._finish(seq, "time_limit")

    def _step(self) -> None:
        self._drop_ended()
        if not self._active:
            return
        b = self._batch
        used = 0
        # (seq id, seq, its (token, position) rows, generating)
        parts: list[tuple[int, Seq, list[tuple[int, int]], bool]] = []
        budget = self._batch_cap
        now = time.perf_counter()
        editor_running = any(
            s.req.priority == Priority.EDITOR and (s.todo or s.pending is not None) for s in self._active
        )
        if editor_running:
            self._editor_seen = now
        generating = []
        for s in sorted((s for s in self._active if s.pending is not None), key=lambda s: s.req.priority):
            if yields(s.req.priority, editor_running, s.sat_out):  # a chat row waits out a keystroke
                s.sat_out += 1
                s.stats.yielded_steps += 1
            else:
                s.sat_out = 0
                generating.append(s)
        # Drafts never take the last free row from a prompt waiting to be evaluated.
        reserve = 1 if any(s.todo for s in self._active) else 0
        for k, seq in enumerate(generating):  # generation first: one token (plus drafts) each, lowest latency
            assert seq.slot is not None and seq.pending is not None
            pos = len(seq.slot.tokens)
            room = self.n_ctx_seq - pos - 1
            # Rows left for this sequence's drafts once every generating sequence has its token.
            spare = budget - used - (len(generating) - k) - reserve
            seq.draft = spec.draft(seq.history)[: max(0, min(room, spare))] if seq.speculate else []
            toks = [seq.pending, *seq.draft]
            parts.append((seq.slot.seq_id, seq, [(t, pos + i) for i, t in enumerate(toks)], True))
            seq.slot.tokens.extend(toks)
            used += len(toks)
        # Then prompt chunks: the most urgent active class first (batching.prompt_shares).
        # Background prompts go in small chunks while a free slot could take an editor request, or
        # while IDLE work (a speculation, closed as soon as a real request comes) holds a slot.
        top = min(s.req.priority for s in self._active)
        todo = [(s.req.priority, len(s.todo)) for s in self._active]
        small = any(not s.busy for s in self._slots) or any(
            s.req.priority == Priority.IDLE for s in self._active
        )
        near = now - self._editor_seen < EDITOR_RECENT_S  # an editor's next keystroke is likely
        chunk_cap = budget
        if small:
            chunk_cap = min(self.background_chunk, EDITOR_NEAR_CHUNK) if near else self.background_chunk
        for seq, share in zip(
            list(self._active), prompt_shares(todo, budget - used, top, chunk_cap), strict=True
        ):
            if share == 0:
                if seq.todo and seq.req.priority > top:
                    seq.stats.held_steps += 1
                continue
            assert seq.slot is not None
            seq.stats.prefill_steps += 1
            chunk, seq.todo = seq.todo[:share], seq.todo[share:]
            for t, p in chunk:
                seq.slot.put(p, t)
            seq.stats.n_prompt_evaluated += len(chunk)
            parts.append((seq.slot.seq_id, seq, chunk, False))
            used += len(chunk)
        if used == 0:
            return
        # The rows in sequence-id order: with a KV stream per slot, llama.cpp splits a batch into
        # micro-batches of consecutive sequence ids, so this order makes the fewest of them.
        n = 0
        rows: list[tuple[Seq, int, int]] = []  # (seq, first batch index, number of logit rows)
        for sid, seq, pairs, gen in sorted(parts, key=lambda part: part[0]):
            last = len(pairs) - 1
            for i, (t, p) in enumerate(pairs):  # a prompt needs logits only for its final token
                put_token(b, n + i, t, p, sid, gen or (i == last and not seq.todo))
            if gen:
                rows.append((seq, n, len(pairs)))
            elif not seq.todo:
                rows.append((seq, n + last, 1))
            n += len(pairs)
        if n > budget:  # never hand llama.cpp a batch it asserts on
            raise DecodeError(f"internal: a batch of {n} tokens exceeds n_batch {budget}")
        b.n_tokens = n
        rc = lc.llama_decode(self.context.ctx, b)
        self.counters.decode_calls += 1
        self.counters.evaluated_tokens += n
        if rc != 0:
            raise DecodeError(f"llama_decode failed (code {rc}): {llama_log_tail() or 'no detail'}")
        now = time.perf_counter()
        for seq, idx, n_rows in rows:
            shared: list[Seq] = []
            if seq.pending is None:  # end of prefill
                seq.stats.prompt_eval_s = now - seq.t_prefill
                shared = self._share_prompt(seq)
            self._sample(seq, idx, n_rows)
            for f in shared:  # each choice samples its first token from the same logits
                self._sample(f, idx, 1)

    def _share_prompt(self, seq: Seq) -> list[Seq]:
        """Give ``seq``'s evaluated prompt to its waiting followers; return those still running."""
        assert seq.slot is not None
        mem, src = self.context.memory, seq.slot.seq_id
        shared: list[Seq] = []
        for f in seq.followers:
            f.leader = None
            if f.slot is None:  # its consumer left while it waited
                continue
            lc.llama_memory_seq_rm(mem, f.slot.seq_id, -1, -1)
            lc.llama_memory_seq_cp(mem, src, f.slot.seq_id, -1, -1)
            f.slot.tokens = list(seq.slot.tokens)
            f.stats.n_shared = len(seq.req.tokens)
            f.stats.prompt_eval_s = seq.stats.prompt_eval_s
            shared.append(f)
        seq.followers = []
        return shared

    def _sample(self, seq: Seq, idx: int, n_rows: int) -> None:
        assert seq.sampler is not None and seq.slot is not None
        slot = seq.slot  # _emit may finish the sequence and release it
        drafted = seq.draft if seq.pending is not None else []
        sampled: list[int] = []  # emitted: every draft they confirm, then at most one other token
        for j in range(n_rows):
            tok = seq.sampler.sample(self.context.ctx, idx + j)
            if not self._emit(seq, tok):
                break
            sampled.append(tok)
            if j >= len(drafted) or tok != drafted[j]:
                break
        if drafted:
            accepted = spec.accepted_count(drafted, sampled)
            seq.stats.n_drafted += len(drafted)
            seq.stats.n_accepted += accepted
            # Rejected drafts leave the cache: positions after the last confirmed one.
            self._cache.drop_after(slot, len(slot.tokens) - (len(drafted) - accepted))
            if not spec.keeps_speculating(
                self.speculative, seq.req.speculative, seq.stats.n_drafted, seq.stats.n_accepted
            ):
                seq.speculate = False
        seq.draft = []

    def _emit(self, seq: Seq, tok: int) -> bool:
        """Hand one sampled token to the consumer; False when the sequence ended."""
        assert seq.slot is not None
        st = seq.stats
        if tok in seq.req.stop_ids or lc.llama_vocab_is_eog(self.model.vocab, tok):
            st.stop_token = tok
            self._finish(seq, "stop_token")
            return False
        st.n_generated += 1
        self.counters.generated_tokens += 1
        seq.out.put(tok)
        seq.history.append(tok)
        if st.n_generated >= seq.req.max_tokens:
            self._finish(seq, "max_tokens")
            return False
        if len(seq.slot.tokens) + 1 >= self.n_ctx_seq:
            # No context shift: shifting is what corrupted users' output. Stop instead.
            self._finish(seq, "context")
            return False
        seq.pending = tok
        return True

    def _finish(self, seq: Seq, reason: str) -> None:
        for f in seq.followers:  # ended before its prompt was shared: its followers end too
            if f.leader is seq:
                f.leader = None
                self._finish(f, reason)
        seq.followers = []
        if seq.stats.finish is None:
            seq.stats.finish = reason
        if seq.sampler is not None:
            seq.sampler.free()
            seq.sampler = None
        if seq.slot is not None:
            # Ended mid-prompt: the slot keeps the positions evaluated so far (slot.tokens), a
            # prefix of this prompt that the next request may reuse.
            slot = seq.slot
            slot.busy = False
            slot.last_used = time.perf_counter()
            seq.slot = None
        if seq in self._active:
            self._active.remove(seq)
        self.counters.active_sequences = len(self._active)
        seq.pending = None
        seq.out.put(_END)

    def _fail(self, seq: Seq, exc: BaseException) -> None:
        if seq.stats.finish is not None:  # already ended (a follower its leader failed)
            return
        if seq.slot is not None:
            self._cache.clear(seq.slot)
        err = exc if isinstance(exc, CGStudioError) else DecodeError(str(exc))
        for s in [seq, *(f for f in seq.followers if f.leader is seq)]:  # _finish ends the followers
            s.stats.finish = "error"
            s.out.put(err)
        seq.todo = []
        self._finish(seq, "error")
