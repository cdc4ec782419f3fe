"""Why a keystroke served with reuse differs from its cold run: the logits at the first token
where they part, from one evaluation of the prompt and the cold run's tokens.

Runs the bench's typing traces as ``cgstudio bench --sections keystroke`` does (warm in order,
then each step cold), then, for each step whose token ids differ, evaluates the step's prompt and
the cold tokens before the first difference in one pass (llama-cpp-python, ``logits_all``) and
prints the two candidates' logits and the top three. A gap of a few hundredths is a greedy
near-tie that a cached prefix plus new tokens and one whole-prompt batch can round either way.

    .venv/bin/python scripts/keystroke_near_ties.py                # the full-size traces
    .venv/bin/python scripts/keystroke_near_ties.py --quick type   # one quick trace
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from llama_cpp import Llama

from cgstudio.bench import traces as tr
from cgstudio.bench.context import open_model
from cgstudio.bench.sections import keystroke
from cgstudio.core.settings import LoadProfile
from cgstudio.store.demo import ensure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("traces", nargs="*", help="trace names (all by default)")
    ap.add_argument("--quick", action="store_true", help="the quick traces (~600-token files)")
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="a demo model's name")
    args = ap.parse_args()
    path = ensure(args.model)
    m = open_model(path, LoadProfile(n_ctx=4096, seed=1), n_parallel=1)  # the bench's profile
    try:
        runs = [
            keystroke.run_trace(m, t)
            for t in tr.typing_traces(quick=args.quick)
            if not args.traces or t.name in args.traces
        ]
    finally:
        m.close()
    ref = Llama(str(path), n_ctx=4096, n_batch=512, logits_all=True, verbose=False)
    for run in runs:
        print(f"{run.trace.name}: {run.same}/{len(run.cold)} identical to cold")
        rows = zip(run.steps, run.warm, run.cold, run.prompts, strict=True)
        for i, (step, warm, cold, prompt) in enumerate(rows, 1):
            if warm.ids == cold.ids:
                continue
            j = next((k for k, (a, b) in enumerate(zip(warm.ids, cold.ids, strict=False)) if a != b), None)
            if j is None:  # one is a prefix of the other: an end of generation, not a token choice
                print(json.dumps({"step": i, "kind": step.kind, "lengths": [len(warm.ids), len(cold.ids)]}))
                continue
            ref.reset()
            ref.eval(prompt.tokens + cold.ids[:j])
            row = np.asarray(ref.scores[len(prompt.tokens) + j - 1])
            top = [(int(t), round(float(row[t]), 3)) for t in np.argsort(row)[-3:][::-1]]
            w, c = warm.ids[j], cold.ids[j]
            print(
                json.dumps(
                    {
                        "step": i,
                        "kind": step.kind,
                        "token": j + 1,
                        "warm": [w, round(float(row[w]), 3)],
                        "cold": [c, round(float(row[c]), 3)],
                        "gap": round(abs(float(row[w] - row[c])), 3),
                        "top3": top,
                    }
                )
            )


if __name__ == "__main__":
    main()
