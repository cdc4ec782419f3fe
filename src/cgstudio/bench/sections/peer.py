"""cgstudio against llama.cpp's own ``llama-server`` (``--peer llama-server=PATH``), interleaved.

Both servers run at once on the same model, threads, batch and per-slot context, four slots each.
``make peer`` builds the peer from the llama.cpp commit that llama-cpp-python vendors, with the
same CPU flags, so the kernels are the same and what differs is the server.

- Keystrokes: the typing traces of ``cgstudio.bench.traces``, each step sent to both servers as
  ``/infill`` (streamed, greedy, 16 tokens), alternating which goes first. The figure is the time
  to the first token, or to the end of an answer that has none. llama-server runs with its
  defaults: prompt caching on, exact prefix reuse only. cgstudio runs without its speculative next
  completion (``--no-speculate-next``), which would compute on the same cores while the peer's
  request is timed; typed-ahead stays on (it uses no engine time).
- Concurrency: four streamed ``/v1/completions`` at once on distinct cold prompts; aggregate
  tokens per second of wall time.

Ratios are ours over theirs as speed (their latency over ours), so 1.0 means "as fast".
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from cgstudio.bench import traces as tr
from cgstudio.bench import workloads as wl
from cgstudio.bench.context import BenchContext
from cgstudio.bench.http import Served, serve, stream_completion
from cgstudio.bench.stats import percentile, summarize

SLOTS = 4
KEY_TOKENS = 16
# A speculative next completion would run on the shared cores while the peer's request is timed.
NO_BACKGROUND = ("--no-speculate-next",)


def run(bc: BenchContext) -> None:
    if bc.peer is None:
        bc.results["peer"] = {"skipped": "no --peer llama-server=PATH (`make peer` builds one)"}
        return
    with (
        serve("cgstudio", bc.path, bc.profile, bc.log_dir, parallel=SLOTS, extra=NO_BACKGROUND) as ours,
        serve("llama-server", bc.path, bc.profile, bc.log_dir, parallel=SLOTS, binary=bc.peer) as theirs,
    ):
        keys = _keystrokes(bc, ours, theirs)
        conc = _concurrency(bc, ours, theirs)
        rss = {"cgstudio_rss_mib": ours.rss_mib(), "llama_server_rss_mib": theirs.rss_mib()}
    bc.results["peer"] = {"binary": str(bc.peer), "keystroke": keys, "concurrency_4": conc, **rss}


def infill_step(
    base_url: str, prefix: str, suffix: str, n_predict: int = KEY_TOKENS
) -> tuple[float, int | None, str]:
    """Seconds from sending a streamed greedy ``/infill`` to its first non-empty content (or to the
    end of an answer with none), the prompt tokens the server evaluated for it (its last chunk's
    ``timings.prompt_n``; both servers send it), and the answer's text. The answer is read to its
    end, as an editor reads it: closing the stream early would cancel the request, and each server
    handles a cancel its own way."""
    body = {
        "input_prefix": prefix,
        "input_suffix": suffix,
        "n_predict": n_predict,
        "temperature": 0,
        "cache_prompt": True,
        "stream": True,
    }
    first: float | None = None
    evaluated: int | None = None
    text: list[str] = []
    t0 = time.perf_counter()
    with httpx.stream("POST", base_url + "/infill", json=body, timeout=600) as r:
        if r.status_code != 200:
            r.read()
            raise RuntimeError(f"{base_url}/infill answered {r.status_code}: {r.text[:300]}")
        for line in r.iter_lines():
            data = line[5:].strip() if line.startswith("data:") else ""
            if not data or data == "[DONE]":
                continue
            doc = json.loads(data)
            if first is None and doc.get("content"):
                first = time.perf_counter() - t0
            text.append(doc.get("content") or "")
            if isinstance(n := (doc.get("timings") or {}).get("prompt_n"), int):
                evaluated = n
    return (first if first is not None else time.perf_counter() - t0), evaluated, "".join(text)


def _keystrokes(bc: BenchContext, ours: Served, theirs: Served) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    our_p95: list[float] = []
    their_p95: list[float] = []
    for trace in tr.typing_traces(quick=bc.plan.quick):
        a: list[float] = []
        b: list[float] = []
        evaluated: dict[str, list[int]] = {"cgstudio": [], "llama_server": []}
        first, *steps = trace.steps
        # Each server's own suggestions, accepted by the ghost trace (traces.with_accepted).
        accepted: dict[str, list[tuple[int, str]]] = {"cgstudio": [], "llama_server": []}
        answers = {"cgstudio": "", "llama_server": ""}
        for server in (ours, theirs):  # the file opens: a cold prompt on each, not counted
            infill_step(server.base_url, first.prefix, first.suffix)
        for i, step in enumerate(steps, 1):
            bc.progress(f"peer: trace {trace.name}, keystroke {i}/{len(steps)}")
            order = [(ours, a, "cgstudio"), (theirs, b, "llama_server")]
            for server, out, name in order if i % 2 else order[::-1]:
                if step.kind == "ghost":
                    accepted[name].append((len(step.prefix), tr.accepted_text(answers[name])))
                sent = tr.with_accepted(step, accepted[name])
                ttft, n, answers[name] = infill_step(server.base_url, sent.prefix, sent.suffix)
                out.append(ttft)
                if n is not None:
                    evaluated[name].append(n)
        rows.append(
            {
                "trace": trace.name,
                "keystrokes": len(steps),
                "cgstudio_ttft_s": _pcts(a),
                "llama_server_ttft_s": _pcts(b),
                # The robust figure on a noisy machine: prompt tokens each server evaluated a step.
                "cgstudio_tokens_evaluated": evaluated["cgstudio"],
                "llama_server_tokens_evaluated": evaluated["llama_server"],
            }
        )
        if a and b:
            our_p95.append(percentile(a, 95))
            their_p95.append(percentile(b, 95))
    bc.record_ratio("keystroke_p95_vs_llama_server", their_p95, our_p95)
    return rows


def _concurrency(bc: BenchContext, ours: Served, theirs: Served) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"cgstudio": [], "llama_server": []}
    trials = max(2, bc.plan.trials // 2)
    for trial in range(trials):
        for name, server in (("cgstudio", ours), ("llama_server", theirs)):
            bc.progress(f"peer: 4 streams on {name} (trial {trial + 1}/{trials})")
            rates[name].append(_aggregate(server.base_url, bc.plan.conc_tokens))
    bc.record_ratio("concurrency_4_vs_llama_server", rates["cgstudio"], rates["llama_server"])
    return {k: summarize(v).as_dict() for k, v in rates.items()}


def _aggregate(base_url: str, max_tokens: int) -> float:
    counts = [0] * SLOTS

    def worker(i: int) -> None:
        prompt = wl.cold_marker() + wl.CONCURRENCY_PROMPTS[i % len(wl.CONCURRENCY_PROMPTS)]
        _text, times, usage = stream_completion(base_url, prompt, max_tokens)
        counts[i] = usage if usage is not None else len(times)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(SLOTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0)


def _pcts(values: list[float]) -> dict[str, float | int]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}


def peer_binary(spec: str) -> Path:
    """``llama-server=PATH`` -> PATH, checked; the only peer kind there is."""
    kind, sep, path = spec.partition("=")
    if kind != "llama-server" or not sep or not path:
        raise ValueError(f"--peer takes llama-server=PATH, got {spec!r}")
    binary = Path(path).expanduser()
    if not binary.is_file():
        raise ValueError(f"--peer: {binary} is not a file (`make peer` builds llama-server)")
    return binary
