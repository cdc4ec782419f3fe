"""Run a model on a task set: generate (or take from the cache), test in the sandbox, count.

The protocol (prompt styles, sampling, stops, guards) is in ``protocol``; the backends in
``backends`` and ``remote``; EVALUATION.md explains each choice.

Generation runs in the calling thread (``parallel > 1``: that many generation threads, which the
engine decodes as one batch); each completion is tested in a sandbox worker thread as soon as it
and those before it exist (``scoring.evaluate``), so testing overlaps generation.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from cgstudio.core.errors import ContextOverflowError, InvalidInputError, UsageError
from cgstudio.evaluation.backends import Backend
from cgstudio.evaluation.cache import CachedCompletion, CompletionCache, task_digest
from cgstudio.evaluation.datasets import Task
from cgstudio.evaluation.protocol import Generated, Style, request_for, sampling_for, to_completion
from cgstudio.evaluation.records import EvalResult, SampleRecord
from cgstudio.evaluation.sandbox import Limits, Outcome
from cgstudio.evaluation.scoring import evaluate


class ProgressSink(Protocol):
    def start(self, total: int, cached: int) -> None: ...

    def generated(self, cached: bool) -> None: ...

    def tested(self, status: str, passed: int, done: int) -> None: ...

    def stop(self) -> None: ...


class _NoProgress:
    def start(self, total: int, cached: int) -> None:
        pass

    def generated(self, cached: bool) -> None:
        pass

    def tested(self, status: str, passed: int, done: int) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class _Job:
    task: Task
    sample: int
    digest: str
    cached: CachedCompletion | None


def run_eval(
    task_set: str,
    tasks: list[Task],
    backend: Backend | None,
    *,
    style: Style = "plain",
    temperature: float = 0.0,
    samples: int = 1,
    seed: int | None = None,
    workers: int = 2,
    parallel: int = 1,
    cache: CompletionCache | None = None,
    cached_only: bool = False,
    limits: Limits | None = None,
    progress: ProgressSink | None = None,
) -> EvalResult:
    """Generate (or read from ``cache``) ``samples`` completions per task and test each as it comes.

    ``backend=None`` scores the canonical solutions (no model, no cache). ``cached_only`` skips
    tasks with no cached completion instead of generating. New completions are cached as they are
    made, so an interrupted run resumes where it stopped. ``parallel`` requests are generated at
    once (1: in the calling thread); ``workers`` tests run at once.
    """
    if samples < 1:
        raise UsageError("--samples must be at least 1")
    if samples > 1 and temperature <= 0:
        raise UsageError("--samples > 1 needs --temperature > 0: greedy samples are all the same")
    sink = progress or _NoProgress()
    if backend is None:
        style, samples = "canonical", 1
    jobs = []
    for task in tasks:
        digest = task_digest(task.prompt, task.suffix)
        for s in range(samples):
            hit = cache.get(task.task_id, s, digest) if cache is not None else None
            jobs.append(_Job(task, s, digest, hit))
    total = len(jobs)
    if cached_only:
        jobs = [j for j in jobs if j.cached is not None]
    started = time.perf_counter()
    records: list[SampleRecord | None] = [None] * len(jobs)
    lock = threading.Lock()
    tally = {"done": 0, "passed": 0}

    def make(job: _Job) -> SampleRecord:
        return _generate(job, backend, style, temperature, seed, cache, lock)

    def completions() -> Iterator[str]:
        for i, record in enumerate(_in_order(make, jobs, parallel)):
            records[i] = record
            sink.generated(record.cached)
            yield record.completion

    def on_result(index: int, outcome: Outcome) -> None:
        with lock:
            tally["done"] += 1
            tally["passed"] += outcome.passed
            done, passed = tally["done"], tally["passed"]
        sink.tested(outcome.status, passed, done)

    sink.start(len(jobs), sum(j.cached is not None for j in jobs))
    try:
        outcomes = evaluate([j.task for j in jobs], completions(), workers, limits, on_result)
    finally:
        sink.stop()
    final: list[SampleRecord] = []
    memory = Counter(outcome.memory for outcome in outcomes)
    for record, outcome in zip(records, outcomes, strict=True):
        assert record is not None
        record.status, record.duration_s = outcome.status, outcome.duration_s
        record.stderr_tail = outcome.stderr_tail
        final.append(record)
    return EvalResult(
        task_set,
        style,
        final,
        n_tasks=len({r.task_id for r in final}),
        samples=samples,
        duration_s=time.perf_counter() - started,
        skipped_uncached=total - len(jobs),
        memory_containment=dict(sorted(memory.items())),
    )


def _in_order(
    make: Callable[[_Job], SampleRecord], jobs: list[_Job], parallel: int
) -> Iterator[SampleRecord]:
    """``make(job)`` for each job, in job order; with ``parallel > 1`` that many run at once (the
    engine batches them), at most ``2 * parallel`` ahead of the one being yielded."""
    if parallel <= 1:
        yield from map(make, jobs)
        return
    pending: deque[Future[SampleRecord]] = deque()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="cgstudio-eval-gen") as pool:
        try:
            for job in jobs:
                pending.append(pool.submit(make, job))
                if len(pending) >= 2 * parallel:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _generate(
    job: _Job,
    backend: Backend | None,
    style: Style,
    temperature: float,
    seed: int | None,
    cache: CompletionCache | None,
    lock: threading.Lock,
) -> SampleRecord:
    task = job.task
    if backend is None:
        return SampleRecord(task.task_id, 0, task.canonical_solution, "canonical", 0.0, cached=False)
    entry, cached = job.cached, job.cached is not None
    if entry is None:
        request = request_for(task, style, sampling_for(style, temperature, seed, job.sample))
        t0 = time.perf_counter()
        try:
            out = backend.generate(request)
        except (ContextOverflowError, InvalidInputError) as exc:
            # Deterministic for this prompt and model: recorded (and cached) as an empty completion.
            out = Generated("", "error", 0, (f"generation_error: {exc.message}",))
        entry = CachedCompletion(
            task.task_id,
            job.sample,
            job.digest,
            out.text,
            out.finish_reason,
            out.completion_tokens,
            round(time.perf_counter() - t0, 4),
            tuple(w.split(":", 1)[0] for w in out.warnings),
        )
        if cache is not None:
            with lock:
                cache.put(entry)
    completion = to_completion(task, style, entry.text)
    return SampleRecord(
        task.task_id,
        job.sample,
        completion,
        entry.finish_reason,
        entry.generation_s,
        cached,
        completion_tokens=entry.completion_tokens,
        raw=entry.text if style == "chat" else None,
        warnings=entry.warnings,
    )
