"""Admission, the worker-thread <-> event-loop bridge, cancellation and supersede.

A request becomes a ``Job``. It waits in a fair queue (round-robin over clients, so one
client's burst cannot starve another) for one of ``parallel`` slots; when the queue is full it
is refused with 503 and Retry-After. A slot runs the synchronous chunk iterator in a worker
thread that hands each chunk to the event loop through an asyncio queue, so the loop never
blocks while decoding.

Cancellation is a ``threading.Event`` passed to the CodeModel stream; the engine checks it
between decode steps. It is set when the client disconnects, when the same client sends a
newer editor completion for the same document (supersede), and at shutdown.

"Same client" never spans two editors: an ``X-Client-Id`` header decides when sent; otherwise
the API key and peer address must match AND the documents must match: same filepath (when
given) and text before the cursor that differs from the old one only in its last line (typing,
backspace, a new line), or extends it. An identical request is a retry, not a supersede.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from cgstudio.core.engine import Priority
from cgstudio.core.errors import CGStudioError, OverloadedError
from cgstudio.core.prompt import GuardWarning, Prompt
from cgstudio.generation.pipeline import Chunk, Result
from cgstudio.generation.timings import Timings, Usage
from cgstudio.server.clients import ClientKey, client_key, same_document
from cgstudio.server.errors import ShuttingDownError
from cgstudio.server.prometheus import Metrics
from cgstudio.server.registry import ModelEntry, Registry
from cgstudio.server.service import GenSpec, open_stream
from cgstudio.server.speculate import Speculator, StreamFactory
from cgstudio.server.typed_ahead import TypedAhead, answer, ghost_of, spec_key

log = logging.getLogger("cgstudio.server")

CANCEL_MESSAGES = {
    "disconnect": "the client disconnected; generation stopped",
    "superseded": "superseded by a newer completion request from the same client for the same document",
    "shutdown": "the server is shutting down",
    "limit": "stopped by the request's time or indentation limit",
}
SHUTDOWN_MESSAGE = "the server is shutting down; retry in a few seconds (on the restarted server)"


class _End:
    pass


@dataclass
class _Failure:
    exc: BaseException


END = _End()


class FairGate:
    """``slots`` concurrent holders. Waiters are served by priority (an editor's FIM keystroke
    before queued chat), then round-robin by client key within a priority. Loop thread only."""

    def __init__(self, slots: int) -> None:
        self.slots = self.free = slots
        self.n_waiting = 0
        self._waiting: dict[Priority, OrderedDict[str, deque[asyncio.Future[bool]]]] = {
            p: OrderedDict() for p in Priority
        }

    def enqueue(self, client: str, priority: Priority = Priority.NORMAL) -> asyncio.Future[bool]:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.free > 0 and self.n_waiting == 0:
            self.free -= 1
            fut.set_result(True)
            return fut
        self._waiting[priority].setdefault(client, deque()).append(fut)
        self.n_waiting += 1
        return fut

    def withdraw(self, fut: asyncio.Future[bool]) -> None:
        """Give up a waiting ticket (it resolves False); a granted one must be released instead."""
        if not fut.done():
            fut.set_result(False)
            self.n_waiting -= 1

    def release(self) -> None:
        for waiting in self._waiting.values():  # most urgent priority first
            while waiting:
                client, queue = next(iter(waiting.items()))
                fut = queue.popleft()
                if queue:
                    waiting.move_to_end(client)
                else:
                    del waiting[client]
                if fut.done():  # withdrawn while waiting
                    continue
                self.n_waiting -= 1
                fut.set_result(True)
                return
        self.free += 1


class Job:
    def __init__(
        self, spec: GenSpec, entry: ModelEntry, client: ClientKey, ticket: asyncio.Future[bool]
    ) -> None:
        self.spec = spec
        self.entry = entry
        self.client = client
        self.ticket = ticket
        self.queue: asyncio.Queue[Chunk | _Failure | _End] = asyncio.Queue()
        self.cancel = threading.Event()
        self.cancel_reason: str | None = None
        self.notices: list[GuardWarning] = []  # from admission (model_substituted), added to the result
        self.t_start = time.perf_counter()
        self.phase, self.phase_at = "queued", self.t_start  # then loading, evaluating, generating
        self.prompt_tokens: int | None = None  # known once the prompt is built
        self.load_s = 0.0
        self.result: Result | None = None
        self.results: list[Result] = []  # every choice's result (n > 1); result is the first's
        self.first: Chunk | None = None
        self.finished = False  # the consumer saw the end
        self.driver: asyncio.Task[None] | None = None
        self._gate: FairGate | None = None

    @property
    def alias(self) -> str:
        return self.entry.alias

    def stop(self, reason: str) -> None:
        """Cancel from the event loop thread: a waiting job leaves the queue, a running one stops."""
        if self.cancel.is_set():
            return
        self.cancel_reason = reason
        self.cancel.set()
        if self._gate is not None:
            self._gate.withdraw(self.ticket)

    def enter(self, phase: str) -> None:
        self.phase, self.phase_at = phase, time.perf_counter()

    def note_prompt(self, prompt: Prompt) -> None:
        self.prompt_tokens = len(prompt.tokens)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t_start


class Runner:
    def __init__(
        self,
        registry: Registry,
        metrics: Metrics,
        *,
        parallel: int,
        max_queue: int,
        retry_after_s: int,
        api_key: str | None,
        stream_factory: StreamFactory = open_stream,
        speculate_next: bool = True,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.gate = FairGate(parallel)
        self.max_queue = max_queue
        self.retry_after_s = retry_after_s
        self.api_key = api_key
        self.stream_factory = stream_factory
        self.inflight: set[Job] = set()
        self.typed_ahead = TypedAhead()  # each client's last ghost text (server/typed_ahead.py)
        self._pool = ThreadPoolExecutor(max_workers=parallel + 1, thread_name_prefix="cgstudio-gen")
        self._closing = False
        self.speculator = Speculator(  # the next completion, computed while idle (server/speculate.py)
            speculate_next, self.typed_ahead, metrics, registry, self._pool, stream_factory, self._idle
        )

    # -- submit ----------------------------------------------------------------------------------
    async def start(self, request: Request, spec: GenSpec) -> Job:
        """Queue ``spec`` and wait for its first chunk; errors before any output are raised here."""
        if self._closing:
            raise ShuttingDownError(SHUTDOWN_MESSAGE, self.retry_after_s)
        entry, substituted = self.registry.resolve(spec.model, spec.capability, spec.unknown_model)
        client = client_key(request, self._request_key(request))
        spec.client = client.key  # repository context keeps each client's recent edits apart
        if spec.supersedable:
            self._supersede(client, spec)
        if (key := spec_key(spec, entry.alias)) and (
            hit := self.typed_ahead.lookup(client.key, key, spec.document_head)
        ):
            self.metrics.speculative_used.inc(hit.ghost.speculative)
            job = Job(spec, entry, client, asyncio.get_running_loop().create_future())
            job.result = answer(hit, spec, job.t_start)  # the engine is not touched
            job.results, job.first, job.finished = [job.result], Chunk(hit.text, result=job.result), True
            self.speculator.served(client.key, spec, entry, hit, job.result)  # the chain goes on
            return job
        self._refuse_if_full()
        self.speculator.cancel_all()  # this request goes to the engine: speculation yields at once
        job = Job(spec, entry, client, self.gate.enqueue(client.key, spec.admission_priority))
        job._gate = self.gate
        if substituted is not None:
            job.notices.append(substituted)
        self.inflight.add(job)
        self.metrics.queue_depth.set(self.gate.n_waiting)
        job.driver = asyncio.create_task(self._drive(job))
        try:
            async with self.watch(request, job):
                job.first = await self.next(job)
        except asyncio.CancelledError:
            job.stop("disconnect")
            raise
        return job

    @contextlib.asynccontextmanager
    async def admitted(self, request: Request) -> AsyncIterator[None]:
        """Hold one slot for work that is not a generation (prompt previews, tokenize): the same
        fair queue as ``start``, and the same 503 + Retry-After when it is full."""
        if self._closing:
            raise ShuttingDownError(SHUTDOWN_MESSAGE, self.retry_after_s)
        self._refuse_if_full()
        ticket = self.gate.enqueue(client_key(request, self._request_key(request)).key)
        self.metrics.queue_depth.set(self.gate.n_waiting)
        try:
            # Shielded: a cancelled await must not cancel the ticket behind the gate's back.
            granted = await asyncio.shield(ticket)
        except asyncio.CancelledError:
            if ticket.done() and ticket.result():
                self.gate.release()
            else:
                self.gate.withdraw(ticket)
            raise
        finally:
            self.metrics.queue_depth.set(self.gate.n_waiting)
        if not granted:
            raise OverloadedError("the request was withdrawn from the queue", self.retry_after_s)
        if self._closing:  # granted by a job that shutdown ended
            self.gate.release()
            raise ShuttingDownError(SHUTDOWN_MESSAGE, self.retry_after_s)
        try:
            yield
        finally:
            self.gate.release()
            self.metrics.queue_depth.set(self.gate.n_waiting)
            self.speculator.poke()

    def _refuse_if_full(self) -> None:
        """503 + Retry-After when no slot is free and the queue already holds --max-queue requests."""
        if self.gate.free == 0 and self.gate.n_waiting >= self.max_queue:
            self.metrics.rejected.inc()
            raise OverloadedError(
                f"{self.gate.n_waiting} requests are already waiting; retry in {self.retry_after_s} s",
                self.retry_after_s,
            )

    def _idle(self) -> bool:  # no job queued or running, no slot held
        return not self.inflight and not self.gate.n_waiting and self.gate.free == self.gate.slots

    def _request_key(self, request: Request) -> str | None:
        return getattr(request.state, "api_key", None)

    def _supersede(self, client: ClientKey, spec: GenSpec) -> None:
        for old in list(self.inflight):
            if old.cancel.is_set() or not old.spec.supersedable or old.client != client:
                continue
            if client.explicit or same_document(old.spec, spec):
                old.stop("superseded")

    async def next(self, job: Job) -> Chunk | None:
        """The next chunk, or None after the last one. A failure in the worker is raised here."""
        item = await job.queue.get()
        if isinstance(item, _Failure):
            job.finished = True
            raise item.exc
        if isinstance(item, _End):
            job.finished = True
            return None
        if item.result is not None:
            job.finished = True
        return item

    async def iterate(self, job: Job) -> AsyncIterator[Chunk]:
        """The job's chunks from the first; leaving early (a disconnect) cancels the generation."""
        try:
            chunk = job.first
            while chunk is not None:
                yield chunk
                if chunk.result is not None:
                    return
                chunk = await self.next(job)
        finally:
            if not job.finished:
                job.stop("disconnect")

    async def collect(self, request: Request, job: Job) -> Result:
        """Wait for the whole result (non-streaming), cancelling if the client goes away."""
        chunk = job.first
        try:
            async with self.watch(request, job):
                while chunk is not None and chunk.result is None:
                    chunk = await self.next(job)
        except asyncio.CancelledError:
            job.stop("disconnect")
            raise
        if chunk is None or chunk.result is None:
            raise CGStudioError("the generation ended without a result")
        return chunk.result

    @contextlib.asynccontextmanager
    async def watch(self, request: Request, job: Job) -> AsyncIterator[None]:
        """Stop ``job`` if the client disconnects while we wait (the body has been read already)."""

        async def on_disconnect() -> None:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    job.stop("disconnect")
                    return

        task = asyncio.create_task(on_disconnect())
        try:
            yield
        finally:
            task.cancel()

    # -- drive ---------------------------------------------------------------------------------
    async def _drive(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        try:
            granted = await job.ticket
            self.metrics.queue_depth.set(self.gate.n_waiting)
            if not granted:
                self._finish_unstarted(job)
                return
            try:
                await self.registry.acquire(job.entry)
                self.metrics.running.inc()
                try:
                    await loop.run_in_executor(self._pool, self._work, job, loop)
                finally:
                    self.metrics.running.dec()
                    self.registry.release(job.entry, job.spec.keep_alive)
            finally:
                self.gate.release()
                self.metrics.queue_depth.set(self.gate.n_waiting)
            if job.result is not None:
                self.metrics.observe_result(job.alias, job.result)
            if job.cancel_reason:
                self.metrics.cancelled.labels(job.cancel_reason).inc()
        except BaseException as exc:  # shutdown cancels drivers; never leave a consumer waiting
            job.queue.put_nowait(
                _Failure(exc if isinstance(exc, Exception) else ShuttingDownError(SHUTDOWN_MESSAGE))
            )
            job.queue.put_nowait(END)
            if not isinstance(exc, Exception):
                raise
        finally:
            self.inflight.discard(job)
            self.speculator.poke()

    def _work(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: load if needed, iterate the chunks, hand each to the loop."""

        def put(item: Chunk | _Failure | _End) -> None:
            loop.call_soon_threadsafe(job.queue.put_nowait, item)

        try:
            if job.cancel.is_set():
                self._finish_unstarted(job, put)
                return
            if not job.entry.loaded:
                job.enter("loading")
            model, load_s = job.entry.ensure_loaded()
            job.enter("evaluating")
            job.load_s = load_s
            if load_s:
                loop.call_soon_threadsafe(self.registry.note_loaded, job.entry, load_s)
            for chunk in self.stream_factory(job.spec, model, job.cancel, job.note_prompt):
                if job.phase != "generating":
                    job.enter("generating")
                if chunk.result is not None:
                    chunk.result.warnings[:0] = job.notices
                    if reason := job.cancel_reason:
                        for r in chunk.choices:  # every choice of an n > 1 run
                            r.warnings.append(GuardWarning(reason, CANCEL_MESSAGES[reason]))
                            r.finish_reason = "cancelled"
                    job.result, job.results = chunk.result, chunk.choices
                    # Before the last chunk reaches the client, which may type ahead at once.
                    loop.call_soon_threadsafe(self._remember, job, chunk.result)
                put(chunk)
        except BaseException as exc:
            put(_Failure(exc))
        finally:
            put(END)

    def _remember(self, job: Job, result: Result) -> None:
        """Keep the client's ghost text for typed-ahead and speculate on its acceptance (loop thread)."""
        if (ghost := ghost_of(job.spec, job.alias, result)) is not None:
            self.typed_ahead.remember(job.client.key, ghost)
            self.speculator.offer(job.client.key, job.spec, job.entry, result)

    def _finish_unstarted(self, job: Job, put: Callable[[Any], None] | None = None) -> None:
        reason = job.cancel_reason or "disconnect"
        job.result = Result(
            text="",
            finish_reason="cancelled",
            warnings=[*job.notices, GuardWarning(reason, CANCEL_MESSAGES[reason])],
            usage=Usage(0, 0),
            timings=Timings(None, None, None, job.elapsed_s()),
            mode=job.spec.mode,
        )
        job.results = [job.result]
        emit = put or job.queue.put_nowait
        emit(Chunk("", result=job.result))
        if put is None:
            emit(END)
            self.metrics.cancelled.labels(reason).inc()

    # -- shutdown --------------------------------------------------------------------------------
    def begin_shutdown(self) -> None:
        """Refuse new work (503) and end every queued and running job with ShuttingDownError now.

        Called when the server starts to stop, before it waits for open responses: each consumer
        gets the error at once (its stream ends with the dialect's error event), even if its
        worker is still inside a decode step or a load; the worker stops at its next cancel check.
        """
        self._closing = True
        self.speculator.close()
        for job in list(self.inflight):
            if job.finished:
                continue
            job.stop("shutdown")
            job.queue.put_nowait(_Failure(ShuttingDownError(SHUTDOWN_MESSAGE, self.retry_after_s)))

    async def close(self, timeout_s: float = 10.0) -> None:
        self.begin_shutdown()
        drivers = [j.driver for j in self.inflight if j.driver is not None]
        drivers += [t for t in (self.speculator.task,) if t is not None and not t.done()]
        if drivers:
            await asyncio.wait(drivers, timeout=timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)
