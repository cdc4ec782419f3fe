"""Run a model on a task set: generate (or take from the cache), test in the sandbox, count.

The protocol (``PROTOCOL_VERSION`` in ``cache``; EVALUATION.md explains each choice):

* Greedy decoding by default. ``temperature > 0`` with ``samples = n`` draws n samples per task
  (top-p 0.95, top-k and min-p off, sample i seeded with ``seed + i``) for the unbiased pass@k.
* HumanEval, pretrained (or unknown) models: the prompt is continued as plain text (style
  ``plain``; ``fim-completion`` puts it in the FIM format with an empty suffix instead), at most 512
  tokens, cut at the standard stops ``HUMANEVAL_STOPS``; the program is prompt + completion + test.
* HumanEval, instruction-tuned models (style ``chat``): ``CHAT_INSTRUCTION`` through the chat
  template, 512 tokens; the code is extracted from the reply. If it defines the entry point it is
  a whole program: it follows the prompt (whose docstring-only stub it redefines, while the
  prompt's imports and helpers stay available), else it is taken as the body after the prompt.
* Infilling (style ``fim``, every variant, as the paper does): the PSM FIM prompt, at most 128
  tokens, ended by the FIM sentinels (stop tokens); the program is prompt + completion + suffix +
  test. The suffix-repetition guard is off (it would change completions); the repetition guard
  stays on and its stops are counted in ``finish_reasons``.

Generation runs in the calling thread (``parallel > 1``: that many generation threads, which the
engine decodes as one batch); each completion is tested in a sandbox worker thread as soon as it
and those before it exist (``scoring.evaluate``), so testing overlaps generation.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from cgstudio.core.errors import ContextOverflowError, InvalidInputError, UsageError
from cgstudio.evaluation.cache import CachedCompletion, CompletionCache, task_digest
from cgstudio.evaluation.datasets import Task, get_tasks
from cgstudio.evaluation.sandbox import Limits, Outcome
from cgstudio.evaluation.scoring import evaluate, mean_pass_at_k
from cgstudio.generation.codeblocks import extract_code

if TYPE_CHECKING:
    import httpx

    from cgstudio.session.model import CodeModel

Style = Literal["plain", "fim-completion", "chat", "fim", "canonical"]

HUMANEVAL_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]
HUMANEVAL_MAX_TOKENS = 512
INFILL_MAX_TOKENS = 128
SAMPLING_TOP_P = 0.95
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function in a python code block.\n"
    "```python\n{prompt}```"
)
# strict off: a variant mismatch (FIM on an -it model, as the paper runs it) is a warning, not an error.
EVAL_GUARDS = {
    "fim_stop_at_suffix": False,
    "fim_single_line": False,
    "fim_block_end": False,
    "repetition": True,
    "strict": False,
}
# What an editor gets: the completion ends where it starts to repeat the text after the cursor.
EDITOR_GUARDS = {**EVAL_GUARDS, "fim_stop_at_suffix": True}
PASS_AT_K = (1, 10, 100)


@dataclass(frozen=True)
class GenRequest:
    style: Style
    prompt: str  # the text to continue, the FIM prefix, or the chat message
    suffix: str
    sampling: dict[str, Any]


@dataclass(frozen=True)
class Generated:
    text: str
    finish_reason: str
    completion_tokens: int | None
    warnings: tuple[str, ...] = ()


class Backend(Protocol):
    """A model to evaluate: ``LocalBackend`` (a GGUF) or ``RemoteBackend`` (a server)."""

    name: str
    fingerprint: str  # the cache's model key
    variant: str  # "pretrained", "instruction-tuned" or "unknown"
    fim_capable: bool

    def describe(self) -> dict[str, Any]: ...

    def cache_settings(self) -> dict[str, Any]:
        """Load settings that change outputs (n_ctx, KV cache types), for the cache key."""
        ...

    def generate(self, request: GenRequest) -> Generated: ...

    def close(self) -> None: ...


class LocalBackend:
    """A loaded GGUF (``cgstudio.session.model.CodeModel``), run through the one generation pipeline.

    ``guards``: the paper's protocol (``EVAL_GUARDS``) or ``EDITOR_GUARDS``, what an editor gets."""

    def __init__(
        self,
        model: CodeModel,
        guards: dict[str, bool] | None = None,
        *,
        name: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """``name`` and ``fingerprint`` default to the model's alias and its GGUF's fingerprint; a
        model on a remote engine passes the served name and ``remote_fingerprint`` instead."""
        from cgstudio.evaluation.cache import gguf_fingerprint

        self.model = model
        self.name = name or model.alias
        self.fingerprint = fingerprint or gguf_fingerprint(model.engine.info.path)
        self.variant = model.variant.variant
        self.fim_capable = model.fim_capable
        self.guards = dict(guards or EVAL_GUARDS)

    def describe(self) -> dict[str, Any]:
        m, info = self.model, self.model.engine.info
        return {
            "name": self.name,
            "path": info.path,
            "general_name": info.metadata.get("general.name"),
            "family": m.family,
            "variant": self.variant,
            "variant_reason": m.variant.reason,
            "quantization": info.quantization,
            "size_bytes": info.size_bytes,
            "fingerprint": self.fingerprint,
        }

    def cache_settings(self) -> dict[str, Any]:
        load = self.model.settings.load
        return {
            "n_ctx": self.model.engine.n_ctx,
            "cache_type_k": load.cache_type_k,
            "cache_type_v": load.cache_type_v,
            "cache_reuse": load.cache_reuse,
            # Only when not the paper's: caches made before this option keep their keys.
            **({"guards": self.guards} if self.guards != EVAL_GUARDS else {}),
        }

    def generate(self, request: GenRequest) -> Generated:
        m = self.model
        kw: dict[str, Any] = {"sampling": request.sampling, "guards": self.guards}
        if request.style == "chat":
            chunks = m.stream_chat([{"role": "user", "content": request.prompt}], **kw)
        elif request.style == "plain" and m.fim_capable:
            # complete() would wrap the text in the FIM format; raw mode continues it as it is.
            chunks = m.stream_raw(request.prompt, **kw)
        else:
            chunks = m.stream_complete(request.prompt, request.suffix, **kw)
        result = None
        for chunk in chunks:
            result = chunk.result or result
        assert result is not None
        return Generated(
            result.text,
            result.finish_reason,
            result.usage.completion_tokens,
            tuple(f"{w.code}: {w.message}" for w in result.warnings),
        )

    def close(self) -> None:
        self.model.close()


class RemoteBackend:
    """A model on an OpenAI-compatible server (``remote.open_remote``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        variant: str,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        from cgstudio.evaluation.cache import remote_fingerprint
        from cgstudio.evaluation.remote import guess_variant, open_remote

        self.client = open_remote(base_url, model, api_key, transport=transport)
        self.base_url = self.client.base_url
        self.name = model
        self.fingerprint = remote_fingerprint(self.base_url, model)
        self.variant = variant if variant in ("pretrained", "instruction-tuned") else guess_variant(model)
        self.fim_capable = True  # the server decides; a server that ignores `suffix` is documented

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base_url": self.base_url,
            "variant": self.variant,
            "fingerprint": self.fingerprint,
        }

    def cache_settings(self) -> dict[str, Any]:
        return {"base_url": self.base_url}

    def generate(self, request: GenRequest) -> Generated:
        if request.style == "chat":
            reply = self.client.chat([{"role": "user", "content": request.prompt}], request.sampling)
        else:
            suffix = None if request.style == "plain" else request.suffix
            reply = self.client.complete(request.prompt, suffix, request.sampling)
        return Generated(reply.text, reply.finish_reason, reply.completion_tokens)

    def close(self) -> None:
        self.client.close()


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
class SampleRecord:
    """One line of results.jsonl: a task's sample, its completion and how its test went."""

    task_id: str
    sample: int
    completion: str  # what the program got (after stop truncation or code extraction)
    finish_reason: str
    generation_s: float
    cached: bool
    completion_tokens: int | None = None
    status: str = "error"
    duration_s: float = 0.0  # the test's wall clock, sandbox start-up included
    stderr_tail: str = ""
    raw: str | None = None  # the model's reply when it differs from the completion (chat)
    warnings: tuple[str, ...] = ()  # warning codes of the generation

    def as_dict(self) -> dict[str, Any]:
        doc = {
            "task_id": self.task_id,
            "sample": self.sample,
            "completion": self.completion,
            "status": self.status,
            "duration_s": round(self.duration_s, 3),
            "generation_s": round(self.generation_s, 3),
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
            "cached": self.cached,
        }
        if self.status != "passed" and self.stderr_tail:
            doc["stderr_tail"] = self.stderr_tail[-500:]
        if self.warnings:
            doc["warnings"] = list(self.warnings)
        if self.raw is not None:
            doc["raw"] = self.raw
        return doc


@dataclass
class EvalResult:
    task_set: str
    style: Style
    records: list[SampleRecord]
    n_tasks: int
    samples: int
    duration_s: float
    skipped_uncached: int = 0
    # What bounded each test's total memory ("cgroup-v2", "cgroup-v1" or "rlimit") -> tests.
    memory_containment: dict[str, int] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        return Counter(r.status for r in self.records)

    def warnings(self) -> Counter[str]:
        """Warning codes over all samples (cached ones included), e.g. ``{"repetition": 3}``."""
        return Counter(code for r in self.records for code in r.warnings)

    def pass_at(self) -> dict[str, float]:
        """Mean unbiased pass@k over tasks, for each k in (1, 10, 100) not above the samples."""
        if not self.records:
            return {}
        per_task: dict[str, list[int]] = {}
        for r in self.records:
            per_task.setdefault(r.task_id, []).append(r.status == "passed")
        counts = [(len(v), sum(v)) for v in per_task.values()]
        n = min(len(v) for v in per_task.values())
        return {f"pass@{k}": mean_pass_at_k(counts, k) for k in PASS_AT_K if k <= n}


# ---------------------------------------------------------------------------------------------------
# Protocol


def select_tasks(
    task_set: str, limit: int | None = None, sample: int | None = None, sample_seed: int = 0
) -> list[Task]:
    """The tasks to run: a seeded sample of ``sample`` tasks (kept in set order), then the first
    ``limit`` of those. The same seed always gives the same sample."""
    tasks = get_tasks(task_set)
    if sample is not None:
        if sample < 1:
            raise UsageError("--sample must be at least 1")
        if sample < len(tasks):
            chosen = sorted(random.Random(sample_seed).sample(range(len(tasks)), sample))
            tasks = [tasks[i] for i in chosen]
    if limit is not None:
        if limit < 1:
            raise UsageError("--limit must be at least 1")
        tasks = tasks[:limit]
    return tasks


def choose_style(task_set: str, variant: str, fim_capable: bool, completion_style: str = "plain") -> Style:
    if task_set.startswith("infill"):
        if not fim_capable:
            raise UsageError(
                f"{task_set} needs a model with FIM tokens; use codegemma-2b or codegemma-7b (or -it)"
            )
        return "fim"
    if variant == "instruction-tuned":
        return "chat"
    if completion_style == "fim-completion" and fim_capable:
        return "fim-completion"
    return "plain"


def sampling_for(style: Style, temperature: float, seed: int | None, sample: int) -> dict[str, Any]:
    """Sampling for one request: greedy unless ``temperature > 0`` (then top-p 0.95, seed + sample)."""
    params: dict[str, Any] = {
        "temperature": temperature,
        "top_k": 0,
        "top_p": SAMPLING_TOP_P if temperature > 0 else 1.0,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
        "max_tokens": INFILL_MAX_TOKENS if style == "fim" else HUMANEVAL_MAX_TOKENS,
        "stop": list(HUMANEVAL_STOPS) if style in ("plain", "fim-completion") else [],
        "seed": (seed or 0) + sample if temperature > 0 else None,
    }
    return params


def key_settings(
    task_set: str, style: Style, temperature: float, seed: int | None, backend_settings: dict[str, Any]
) -> dict[str, Any]:
    """What the cache key covers (see ``cache``): everything that changes the generated text."""
    sampling = sampling_for(style, temperature, seed, 0)
    return {
        "task_set": task_set,
        "style": style,
        "sampling": sampling,
        "guards": EVAL_GUARDS,
        "instruction": CHAT_INSTRUCTION if style == "chat" else None,
        **backend_settings,
    }


def request_for(task: Task, style: Style, sampling: dict[str, Any]) -> GenRequest:
    if style == "chat":
        return GenRequest(style, CHAT_INSTRUCTION.format(prompt=task.prompt), "", sampling)
    return GenRequest(style, task.prompt, task.suffix if style == "fim" else "", sampling)


def truncate_at_stops(text: str, stops: Sequence[str]) -> str:
    cut = min((i for s in stops if (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def to_completion(task: Task, style: Style, text: str) -> str:
    """The text that ``scoring.build_program`` puts between the prompt and the suffix."""
    if style in ("plain", "fim-completion"):
        return truncate_at_stops(text, HUMANEVAL_STOPS)
    if style == "chat":
        code = extract_code(text)
        if re.search(rf"^(?:async\s+)?def\s+{re.escape(task.entry_point)}\s*\(", code, re.MULTILINE):
            return "\n" + code  # a whole program: redefines the prompt's stub
        return code
    return text


# ---------------------------------------------------------------------------------------------------
# The run


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
