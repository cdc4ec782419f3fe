"""Typing traces (``bench/traces.py``) at real files, one FIM request a step: reuse against cold.

Per trace, the first step (the file opens) is served from an empty cache and not timed; then
every step is served in order with the default reuse (the exact common prefix), as an editor
sends them; then every step's prompt again from an empty cache. The cold runs come after the
whole trace: run in between, each would leave a freshly computed cache for the next step and so
hide a stale one.

Figures, per trace and per step kind: the time to the first token (p50, p95), the prompt tokens
evaluated a step (the engine's counters: what was not reused), and the share of steps whose
greedy token ids equal the cold run's. One decode step is the median time between successive
tokens of the trace's own answers (the same prompts, the same run); where they hold too few, a
plain decode after the trace. ``keystroke_p95_over_decode_step`` is, per trace where exact reuse
applies (``traces.EXACT_REUSE``: type, backspace, enter, accept, ghost), the p95 time to first token
over that trace's decode step (target 2, lower is better). In PSM order each of those keystrokes
evaluates the suffix again, so ``keystroke_p95_over_decode_step_no_suffix`` gives the same ratio on
the ``end`` trace (typing at the end of a file), where nothing follows the cursor.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cgstudio.bench import traces as tr
from cgstudio.bench.context import BenchContext, open_model
from cgstudio.bench.stats import percentile, summarize
from cgstudio.core.engine import DecodeRequest, DecodeStats, SamplerConfig
from cgstudio.core.prompt import Prompt
from cgstudio.generation.request import GenerationRequest
from cgstudio.repo import RepoContext
from cgstudio.session.model import CodeModel

MAX_TOKENS = 16
MIN_STEPS = 4  # token-to-token times a trace's answers must hold to give its decode step
DECODE_TOKENS = 32  # the plain decode that measures a step otherwise


@dataclass(frozen=True)
class Served:
    """One FIM request as the engine served it: greedy, no speculation, token healing's first-token
    constraint as on editor paths, no post-processing (the ids are the engine's)."""

    ids: list[int]
    ttft_s: float  # to the first token; to the end of the answer when it has none
    n_prompt: int
    n_evaluated: int  # prompt tokens run through the model, the rest came from the cache
    gaps_s: list[float]  # times between successive tokens: decode steps
    n_context: int = 0  # repository context tokens in the prompt


@dataclass(frozen=True)
class TraceRun:
    trace: tr.Trace
    steps: list[tr.Step]  # the timed steps (all but the first)
    warm: list[Served]
    cold: list[Served]
    decode_step_s: float | None
    decode_step_from: str  # "answers" or "plain decode"
    prompts: list[Prompt]  # each timed step's prompt: its warm and its cold run had these tokens

    @property
    def same(self) -> int:
        return sum(w.ids == c.ids for w, c in zip(self.warm, self.cold, strict=True))


def run(bc: BenchContext) -> None:
    """Every trace of ``traces.typing_traces`` with reuse, then cold; the ratios described above."""
    m = open_model(bc.path, bc.profile, n_parallel=1)
    try:
        if not m.fim_capable:
            bc.results["keystroke"] = {"skipped": "the model has no FIM tokens"}
            return
        traces = tr.typing_traces(quick=bc.plan.quick)  # the default seed: runs compare
        runs = [run_trace(m, t, bc.progress) for t in traces]
        record(bc, runs)
        _context_cost(bc, m, traces[0])
    finally:
        m.close()


def run_trace(m: CodeModel, trace: tr.Trace, say: Callable[[str], None] = lambda _: None) -> TraceRun:
    """One trace: opened cold, every step with reuse in order, then every step cold."""
    first, *scripted = trace.steps
    serve(m, trace, first, cache=False)
    warm: list[Served] = []
    prompts: list[Prompt] = []
    steps: list[tr.Step] = []
    accepted: list[tuple[int, str]] = []  # the ghost steps' own suggestions (traces.with_accepted)
    for i, step in enumerate(scripted, 1):
        say(f"trace {trace.name}: step {i}/{len(scripted)} ({step.kind}), with reuse")
        if step.kind == "ghost" and warm:
            answer = m.engine.detokenize(warm[-1].ids)[len(prompts[-1].heal) :]
            accepted.append((len(step.prefix), tr.accepted_text(answer)))
        steps.append(tr.with_accepted(step, accepted))
        prompts.append(m.prompt(request(trace, steps[-1]))[0])
        warm.append(serve(m, trace, steps[-1], prompt=prompts[-1]))
    gaps = [g for w in warm for g in w.gaps_s]
    source = "answers"
    if len(gaps) < MIN_STEPS:
        gaps, source = _plain_decode(m, steps[-1].prefix), "plain decode"
    cold = []
    for i, step in enumerate(steps, 1):
        say(f"trace {trace.name}: step {i}/{len(steps)} ({step.kind}), cold")
        cold.append(serve(m, trace, step, cache=False, prompt=prompts[i - 1]))  # the same tokens
    step_s = statistics.median(gaps) if gaps else None
    return TraceRun(trace, steps, warm, cold, step_s, source, prompts)


def record(bc: BenchContext, runs: list[TraceRun]) -> None:
    """Rows per trace and per step kind, and the keystroke ratios, from ``runs``."""
    rows: list[dict[str, object]] = []
    for r in runs:
        ttft = [w.ttft_s for w in r.warm]
        rows.append(
            {
                "trace": r.trace.name,
                "steps": _kinds([s.kind for s in r.steps]),
                "prompt_tokens": max(c.n_prompt for c in r.cold),
                "ttft_p50_s": percentile(ttft, 50),
                "ttft_p95_s": percentile(ttft, 95),
                "cold_ttft_p50_s": percentile([c.ttft_s for c in r.cold], 50),
                "evaluated_per_step": summarize([float(w.n_evaluated) for w in r.warm]).as_dict(),
                "decode_step_ms": None if r.decode_step_s is None else r.decode_step_s * 1000,
                "identical_to_cold": f"{r.same}/{len(r.cold)}",
            }
        )
    bc.results["keystroke"] = rows
    bc.results["keystroke_by_kind"] = _by_kind(runs)
    bc.results["keystroke_decode_step_from"] = {r.trace.name: r.decode_step_from for r in runs}
    # Each step's cold run is paired with its run with reuse: the same prompt.
    pairs = [(c.ttft_s, w.ttft_s) for r in runs for w, c in zip(r.warm, r.cold, strict=True)]
    bc.record_ratio("keystroke_ttft_speedup", [c for c, _ in pairs], [w for _, w in pairs])
    bc.record_values("keystroke_agreement_vs_cold", [r.same / len(r.cold) for r in runs])
    for key, names in (
        ("keystroke_p95_over_decode_step", tr.EXACT_REUSE),
        ("keystroke_p95_over_decode_step_no_suffix", tr.NO_SUFFIX),
    ):
        chosen = [r for r in runs if r.trace.name in names and r.decode_step_s]
        if chosen:
            bc.record_ratio(
                key,
                [percentile([w.ttft_s for w in r.warm], 95) for r in chosen],
                [r.decode_step_s or 0.0 for r in chosen],
            )


def _by_kind(runs: list[TraceRun]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for kind in tr.KINDS:
        served = [
            (w, c) for r in runs for s, w, c in zip(r.steps, r.warm, r.cold, strict=True) if s.kind == kind
        ]
        if not served:
            continue
        ttft = [w.ttft_s for w, _ in served]
        rows.append(
            {
                "kind": kind,
                "steps": len(served),
                "ttft_p50_s": percentile(ttft, 50),
                "ttft_p95_s": percentile(ttft, 95),
                "evaluated_per_step": summarize([float(w.n_evaluated) for w, _ in served]).as_dict(),
                "identical_to_cold": f"{sum(w.ids == c.ids for w, c in served)}/{len(served)}",
            }
        )
    return rows


def _kinds(kinds: list[str]) -> str:
    """``type type enter`` -> ``type×2 enter×1``, in order of first appearance."""
    counts: dict[str, int] = {}
    for k in kinds:
        counts[k] = counts.get(k, 0) + 1
    return " ".join(f"{k}×{n}" for k, n in counts.items())


def _context_cost(bc: BenchContext, m: CodeModel, trace: tr.Trace) -> None:
    """One trace typed twice with reuse: without repository context, then inside a workspace
    whose other files (an implementation beside the file's test, chunks BM25 finds) put context
    before it. Each keystroke is timed from building its prompt (the index check, retrieval,
    packing) to its first token; the ratio is bare over with context, so 0.83 or more means a
    keystroke with context costs at most 1.2 times one without."""
    first, *steps = trace.steps
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / trace.file).write_text(first.prefix + first.suffix)
        (ws / f"test_{trace.file}").write_text(first.suffix[:3000])
        (ws / "helpers.py").write_text(first.prefix[:3000])
        timed: dict[str, list[Served]] = {}
        for label, repo in (("bare", None), ("context", RepoContext([ws]))):
            m.repo = repo
            serve(m, trace, first, cache=False)
            timed[label] = []
            for i, step in enumerate(steps, 1):
                bc.progress(f"keystroke {i}/{len(steps)}, {label}")
                timed[label].append(serve(m, trace, step, from_prompt=True))
        m.repo = None
    bare = [s.ttft_s for s in timed["bare"]]
    ctx = [s.ttft_s for s in timed["context"]]
    bc.results["keystroke_context"] = {
        "context_tokens": timed["context"][-1].n_context,
        "bare_ttft_s": summarize(bare).as_dict(),
        "context_ttft_s": summarize(ctx).as_dict(),
        "context_prompt_tokens_evaluated": summarize(
            [float(s.n_evaluated) for s in timed["context"]]
        ).as_dict(),
    }
    bc.record_ratio("keystroke_bare_vs_context_ttft", bare, ctx)


def request(trace: tr.Trace, step: tr.Step) -> GenerationRequest:
    return GenerationRequest("fim", step.prefix, step.suffix, path=step.file or trace.file)


def serve(
    m: CodeModel,
    trace: tr.Trace,
    step: tr.Step,
    *,
    cache: bool = True,
    from_prompt: bool = False,
    prompt: Prompt | None = None,
) -> Served:
    """``step`` of ``trace`` through the engine; ``cache=False`` is a cold run (empty cache).
    ``from_prompt``: the time to first token includes building the prompt. ``prompt``: these
    tokens, built before (a cold run compares with the very prompt its warm run had: the editor
    layout's split depends on the requests before it, ``session.anchors``)."""
    t_prompt = time.perf_counter()
    if prompt is None:
        prompt, _ = m.prompt(request(trace, step))
    t0 = t_prompt if from_prompt else time.perf_counter()
    ids, times, stats = _decode(m, prompt.tokens, MAX_TOKENS, prompt.stop_ids, cache=cache, heal=prompt.heal)
    end = times[0] if times else time.perf_counter()
    n_context = prompt.context_span[1] - prompt.context_span[0]
    return Served(ids, end - t0, stats.n_prompt, stats.n_prompt_evaluated, _gaps(times), n_context)


def _plain_decode(m: CodeModel, text: str) -> list[float]:
    """Decode steps of a plain continuation of the last lines of ``text`` (no stop but the model's
    end of text): for models whose FIM answers are too short to time a step."""
    prompt, _ = m.prompt(GenerationRequest("plain", text[-600:]))
    _, times, _ = _decode(m, prompt.tokens, DECODE_TOKENS, frozenset(), cache=True)
    return _gaps(times)


def _decode(
    m: CodeModel,
    tokens: list[int],
    max_tokens: int,
    stop_ids: frozenset[int],
    *,
    cache: bool,
    heal: str = "",
) -> tuple[list[int], list[float], DecodeStats]:
    """Greedy, without speculation: the token ids, when each arrived, and the engine's stats.
    ``heal``: token healing's text (``Prompt.heal``), which the first token must start with, as
    the pipeline sends it on editor paths."""
    req = DecodeRequest(
        tokens=tokens,
        max_tokens=max_tokens,
        sampler=SamplerConfig(temperature=0.0),
        stop_ids=stop_ids,
        cache=cache,
        speculative=False,
        starts_with=heal,
    )
    stream = m.engine.stream(req)
    ids: list[int] = []
    times: list[float] = []
    for tok in stream:
        times.append(time.perf_counter())
        if isinstance(tok, int):
            ids.append(tok)
    return ids, times, stream.stats


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]
