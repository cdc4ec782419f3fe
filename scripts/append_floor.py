"""What appending k tokens to a cached prompt costs llama.cpp itself, in decode steps.

A keystroke that inserts k tokens nobody computed (a pasted word, a suggestion from elsewhere:
the bench's scripted ``accept`` steps insert 5 to 16) must run those k tokens through the model
before its first answer token. This measures that floor with llama-cpp-python alone, no cgstudio
code in the timed path: a ~600-token prefix of argparse.py is evaluated once, then for each k the
next k tokens of the file are evaluated on top of it (the cache cut back to the prefix each
time), and the time is divided by the time of k = 1, one decode step. Prints JSON.

    .venv/bin/python scripts/append_floor.py [--model qwen2.5-coder-0.5b] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from llama_cpp import Llama

from cgstudio.bench.workloads import stdlib_source
from cgstudio.engine.llamacpp.handle import default_threads
from cgstudio.store.demo import ensure

PREFIX_TOKENS = 600
SIZES = (1, 2, 4, 8, 12, 16, 32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b", help="a demo model's name")
    ap.add_argument("--threads", type=int, default=default_threads(), help="as the engine: physical cores")
    ap.add_argument("--trials", type=int, default=7)
    args = ap.parse_args()
    path = ensure(args.model)
    llm = Llama(str(path), n_ctx=4096, n_batch=512, n_threads=args.threads, verbose=False)
    ids = llm.tokenize(stdlib_source("argparse").encode(), add_bos=False)
    prefix, rest = ids[:PREFIX_TOKENS], ids[PREFIX_TOKENS:]
    llm.eval(prefix)
    times: dict[int, list[float]] = {k: [] for k in SIZES}
    for _ in range(args.trials):
        for k in SIZES:  # interleaved, so drift on a shared machine hits every size alike
            llm.n_tokens = len(prefix)  # eval() cuts the cache back to here
            t0 = time.perf_counter()
            llm.eval(rest[:k])
            times[k].append(time.perf_counter() - t0)
    step = statistics.median(times[1])
    print(
        json.dumps(
            {
                "model": str(path),
                "threads": args.threads,
                "prefix_tokens": len(prefix),
                "decode_step_ms": round(step * 1000, 1),
                "append": {
                    str(k): {
                        "ms": round(statistics.median(t) * 1000, 1),
                        "decode_steps": round(statistics.median(t) / step, 2),
                    }
                    for k, t in times.items()
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
