"""Typing traces at the cursor of a real file, one FIM request a keystroke: reuse against cold."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cgstudio.bench import workloads as wl
from cgstudio.bench.context import BenchContext, open_model
from cgstudio.bench.stats import summarize
from cgstudio.core.engine import DecodeRequest, SamplerConfig
from cgstudio.generation.request import GenerationRequest
from cgstudio.repo import RepoContext
from cgstudio.session.model import CodeModel

MAX_TOKENS = 16


@dataclass(frozen=True)
class Served:
    """One FIM request as the engine served it (greedy, no speculation, no post-processing)."""

    ids: list[int]
    ttft_s: float | None  # None when the first token sampled ended the answer
    n_prompt: int
    n_evaluated: int  # prompt tokens run through the model, the rest came from the cache
    n_context: int = 0  # repository context tokens in the prompt


def run(bc: BenchContext) -> None:
    """Per trace: every keystroke served with reuse, in order, as an editor sends them; then every
    keystroke's prompt again, cold. Reports the cold/reuse TTFT ratio and, per trace, the share of
    keystrokes whose token ids equal the cold run's."""
    plan = bc.plan
    m = open_model(bc.path, bc.profile, n_parallel=1)
    try:
        if not m.fim_capable:
            bc.results["keystroke"] = {"skipped": "the model has no FIM tokens"}
            return
        rows: list[dict[str, object]] = []
        shares: list[float] = []
        pairs: list[tuple[float, float]] = []
        for t, at in enumerate(plan.keystroke_traces, 1):
            case = wl.keystroke_case(m.vocab, plan.keystroke_tokens, plan.keystrokes, at)
            keys = range(1, len(case.typed))
            # The file opens (nothing cached), then each keystroke goes on from the cache the one
            # before left. The cold runs come after the whole trace: run in between, each would
            # leave a freshly computed cache for the next keystroke, and so hide a stale one.
            _serve(m, case, 0, cache=False)
            warm = []
            for i in keys:
                bc.progress(f"trace {t}: keystroke {i}/{len(keys)}, with reuse")
                warm.append(_serve(m, case, i))
            cold = []
            for i in keys:
                bc.progress(f"trace {t}: keystroke {i}/{len(keys)}, cold")
                cold.append(_serve(m, case, i, cache=False))
            same = sum(w.ids == c.ids for w, c in zip(warm, cold, strict=True))
            shares.append(same / len(cold))
            pairs += [(c.ttft_s, w.ttft_s) for w, c in zip(warm, cold, strict=True) if c.ttft_s and w.ttft_s]
            line = case.before.count("\n") + 1
            rows.append(
                {
                    "cursor": f"argparse.py (~{plan.keystroke_tokens} tokens), line {line}",
                    "prompt_tokens": cold[-1].n_prompt,
                    "keystrokes": len(cold),
                    "cold_ttft_s": summarize([c.ttft_s for c in cold if c.ttft_s]).as_dict(),
                    "reuse_ttft_s": summarize([w.ttft_s for w in warm if w.ttft_s]).as_dict(),
                    "reuse_prompt_tokens_evaluated": summarize(
                        [float(w.n_evaluated) for w in warm]
                    ).as_dict(),
                    "identical_to_cold": f"{same}/{len(cold)}",
                }
            )
        bc.results["keystroke"] = rows
        # Each keystroke's cold run is paired with its run with reuse: the same prompt.
        bc.record_ratio("keystroke_ttft_speedup", [c for c, _ in pairs], [w for _, w in pairs])
        bc.record_values("keystroke_agreement_vs_cold", shares)
        case = wl.keystroke_case(m.vocab, plan.keystroke_tokens, plan.keystrokes, plan.keystroke_traces[0])
        _context_cost(bc, m, case)
    finally:
        m.close()


def _context_cost(bc: BenchContext, m: CodeModel, case: wl.KeystrokeCase) -> None:
    """One trace typed twice with reuse: without repository context, then inside a workspace
    whose other files (an implementation beside the file's test, chunks BM25 finds) put about
    1,500 tokens of context before it. Each keystroke is timed from building its prompt (the
    index check, retrieval, packing) to its first token; the ratio is bare over with context,
    so 0.83 or more means a keystroke with context costs at most 1.2 times one without."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        (ws / case.path).write_text(case.before + case.typed + case.after)
        (ws / f"test_{case.path}").write_text(case.after[:3000])
        (ws / "helpers.py").write_text(case.before[:3000])
        keys = range(1, len(case.typed))
        timed: dict[str, list[Served]] = {}
        for label, repo in (("bare", None), ("context", RepoContext([ws]))):
            m.repo = repo
            _serve(m, case, 0, cache=False)
            timed[label] = []
            for i in keys:
                bc.progress(f"keystroke {i}/{len(keys)}, {label}")
                timed[label].append(_serve(m, case, i, from_prompt=True))
        m.repo = None
    pairs = [
        (b.ttft_s, c.ttft_s)
        for b, c in zip(timed["bare"], timed["context"], strict=True)
        if b.ttft_s is not None and c.ttft_s is not None
    ]
    with_ctx = timed["context"][-1]
    bc.results["keystroke_context"] = {
        "context_tokens": with_ctx.n_context,
        "bare_ttft_s": summarize([b for b, _ in pairs]).as_dict(),
        "context_ttft_s": summarize([c for _, c in pairs]).as_dict(),
        "context_prompt_tokens_evaluated": summarize(
            [float(s.n_evaluated) for s in timed["context"]]
        ).as_dict(),
    }
    bc.record_ratio("keystroke_bare_vs_context_ttft", [b for b, _ in pairs], [c for _, c in pairs])


def _serve(
    m: CodeModel, case: wl.KeystrokeCase, i: int, *, cache: bool = True, from_prompt: bool = False
) -> Served:
    """Keystroke ``i`` of ``case`` through the engine; ``cache=False`` is a cold run (empty cache).
    ``from_prompt``: the time to first token includes building the prompt."""
    prefix, suffix = case.request(i)
    t_prompt = time.perf_counter()
    prompt, _ = m.prompt(GenerationRequest("fim", prefix, suffix, path=case.path))
    req = DecodeRequest(
        tokens=prompt.tokens,
        max_tokens=MAX_TOKENS,
        sampler=SamplerConfig(temperature=0.0),
        stop_ids=prompt.stop_ids,
        cache=cache,
        speculative=False,
    )
    t0 = t_prompt if from_prompt else time.perf_counter()
    stream = m.engine.stream(req)
    ids: list[int] = []
    first: float | None = None
    for tok in stream:
        first = first or time.perf_counter()
        if isinstance(tok, int):
            ids.append(tok)
    ttft = None if first is None else first - t0
    n_context = prompt.context_span[1] - prompt.context_span[0]
    return Served(ids, ttft, stream.stats.n_prompt, stream.stats.n_prompt_evaluated, n_context)
