"""Speculative next completion: the answer to the keystroke that accepts a ghost text, computed
while the server has nothing else to do.

When a FIM answer G to a text before the cursor P finishes (the ghost text typed-ahead keeps),
the request the editor sends if the user accepts G is known: P+G before the cursor, and the same
suffix, served model, sampling, guards and endpoint. ``Speculator`` runs that request in the
background at ``Priority.IDLE`` and keeps its answer as the client's speculated answer in the
typed-ahead store (``TypedAhead.remember_speculated``). Accepting G is then answered at once
(``timings.source: "speculative"``), and typing the first characters of the speculated answer
is served as typed-ahead serves a ghost. The chain goes on: a speculated answer served whole is
itself a ghost text, so the server speculates on its acceptance in turn, and accepting ghost after
ghost is answered at once each time the speculation finished before the next keystroke.

Rules:
- Reproducible answers only: temperature 0, or a seed (the request's or the profile's). A sample
  for P+G would not be the answer a fresh request gets.
- One per client: the client's next answer replaces its speculation, waiting or running.
- It never delays real work. It starts only when the runner is idle (no job queued or running and
  every slot free) and the model is still loaded (it never loads one), and it holds no slot. Any
  request that goes to the engine cancels it before that request is queued (``cancel_all``), and
  the llama.cpp scheduler also closes an IDLE sequence as soon as another one is submitted. One
  speculation runs at a time, on the runner's spare worker thread.
- Only a run that ends on its own (``eos`` or ``stop``) is kept. A cancelled or cut run keeps
  nothing; the prompt it evaluated stays in the KV cache, where the next keystroke reuses it.

Everything here runs on the event loop thread, except ``_work`` (a worker thread).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field

from cgstudio.core.engine import Priority
from cgstudio.core.prompt import Prompt
from cgstudio.generation.pipeline import Chunk, Result
from cgstudio.server.prometheus import Metrics
from cgstudio.server.registry import ModelEntry, Registry
from cgstudio.server.service import GenSpec
from cgstudio.server.typed_ahead import MAX_CLIENTS, REUSABLE_FINISH, Ghost, Hit, TypedAhead, spec_key
from cgstudio.session.model import CodeModel

log = logging.getLogger("cgstudio.server")
# How a job's chunks are made: ``service.open_stream``, or a test's stand-in.
StreamFactory = Callable[[GenSpec, CodeModel, threading.Event, Callable[[Prompt], None]], Iterator[Chunk]]


@dataclass(eq=False)
class Speculation:
    client: str
    spec: GenSpec  # the request that accepts the ghost text, at IDLE priority
    entry: ModelEntry
    key: str  # the typed-ahead key of the request it continues (and of the one it expects)
    cancel: threading.Event = field(default_factory=threading.Event)


def accepting_request(spec: GenSpec, ghost_text: str) -> GenSpec:
    """The request an editor sends once ``ghost_text`` is accepted: the text before the cursor
    grows by it (the cursor line, ``middle``, for ``/infill``); the rest is unchanged."""
    if spec.mode == "infill":
        return dataclasses.replace(spec, middle=spec.middle + ghost_text, priority=Priority.IDLE)
    return dataclasses.replace(spec, prompt=spec.prompt + ghost_text, priority=Priority.IDLE)


def reproducible(model: CodeModel, spec: GenSpec) -> bool:
    """Whether a fresh run of ``spec`` gives the same answer: greedy, or sampled with a seed."""
    params = model.sampling(spec.sampling)
    return params.temperature == 0 or params.seed is not None or model.settings.load.seed is not None


class Speculator:
    """Each client's speculated next completion (see the module docstring)."""

    def __init__(
        self,
        enabled: bool,
        typed_ahead: TypedAhead,
        metrics: Metrics,
        registry: Registry,
        pool: Executor,
        stream_factory: StreamFactory,
        idle: Callable[[], bool],
    ) -> None:
        self.enabled = enabled
        self.typed_ahead = typed_ahead
        self.metrics = metrics
        self.registry = registry
        self.pool = pool
        self.stream_factory = stream_factory
        self.idle = idle
        self.waiting: OrderedDict[str, Speculation] = OrderedDict()  # by client, oldest first
        self.running: Speculation | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self.running is not None or bool(self.waiting)

    def offer(self, client: str, spec: GenSpec, entry: ModelEntry, result: Result) -> None:
        """A real answer finished: speculate on its acceptance, replacing the client's speculation."""
        if self.running is not None and self.running.client == client:
            self.running.cancel.set()
        self.waiting.pop(client, None)
        if not self.enabled or not result.text or result.finish_reason not in REUSABLE_FINISH:
            return
        key, model = spec_key(spec, entry.alias), entry.model
        if key is None or model is None or not reproducible(model, spec):
            return
        self.waiting[client] = Speculation(client, accepting_request(spec, result.text), entry, key)
        while len(self.waiting) > MAX_CLIENTS:
            self.waiting.popitem(last=False)
        self.poke()

    def served(self, client: str, spec: GenSpec, entry: ModelEntry, hit: Hit, result: Result) -> None:
        """A request was answered from the typed-ahead store: when that was a speculated answer
        served whole (the user accepted the ghost text), speculate on accepting that one too."""
        if hit.ghost.speculative and not hit.typed:
            self.offer(client, spec, entry, result)

    def cancel_all(self) -> None:
        """Real work arrives: the running speculation stops at its next decode step."""
        if self.running is not None:
            self.running.cancel.set()

    def close(self) -> None:
        self.enabled = False
        self.waiting.clear()
        self.cancel_all()

    def poke(self) -> None:
        """Start the oldest waiting speculation if nothing else runs."""
        while self.running is None and self.waiting and self.enabled and self.idle():
            _, s = self.waiting.popitem(last=False)
            if s.entry.loaded:
                self.running = s
                self.task = asyncio.get_running_loop().create_task(self._run(s))

    async def _run(self, s: Speculation) -> None:
        try:
            await self.registry.acquire(s.entry)
            try:
                model = s.entry.model
                if model is None or s.cancel.is_set():
                    return
                self.metrics.speculative_started.inc()
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self.pool, self._work, s, model)
            finally:
                self.registry.release(s.entry, s.spec.keep_alive)
            if s.cancel.is_set() or result is None or result.finish_reason == "cancelled":
                self.metrics.speculative_cancelled.inc()
            else:
                ghost = Ghost(s.key, s.spec.document_head, result.text, result.finish_reason, True)
                self.typed_ahead.remember_speculated(s.client, ghost)
        except Exception as exc:  # a failed speculation costs only itself; the real request will say why
            log.debug("speculative completion failed: %s", exc)
        finally:
            self.running = None
            self.poke()

    def _work(self, s: Speculation, model: CodeModel) -> Result | None:
        """Worker thread: run the request to its end (or its cancel)."""

        def ignore(prompt: Prompt) -> None:
            pass

        result = None
        for chunk in self.stream_factory(s.spec, model, s.cancel, ignore):
            if chunk.result is not None:
                result = chunk.result
        return result
