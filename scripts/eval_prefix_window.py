"""The editor prefix window (``fim_prefix_tokens``) on and off, on the infilling tasks it cuts.

Only the seeded tasks whose text before the cursor is longer than the window change, so only
those run: with the editor endings (``--guards editor``), once with the default window and once
with the whole prefix (``fim_prefix_tokens`` 0). Prints a JSON summary.

    .venv/bin/python scripts/eval_prefix_window.py infill-single
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cgstudio.core.settings import GuardSettings, load_settings
from cgstudio.evaluation.backends import open_local_backend
from cgstudio.evaluation.protocol import EDITOR_GUARDS, select_tasks
from cgstudio.evaluation.runner import run_eval
from cgstudio.store.resolve import resolve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task_set", choices=["infill-single", "infill-multi"])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    limit = GuardSettings().fim_prefix_tokens
    settings = load_settings({})
    resolved = resolve(args.model, configured=settings.model)
    backend = open_local_backend(Path(resolved.path), resolved.alias, settings, 1, "editor")
    vocab = backend.model.vocab
    tasks = [
        t
        for t in select_tasks(args.task_set, None, args.sample, args.sample_seed)
        if len(vocab.plain(t.prompt)) > limit
    ]
    summary: dict[str, object] = {"task_set": args.task_set, "window": limit, "tasks_cut": len(tasks)}
    try:
        for name, tokens in (("whole_prefix", 0), ("window", limit)):
            backend.guards = {**EDITOR_GUARDS, "fim_prefix_tokens": tokens}
            result = run_eval(args.task_set, tasks, backend, style="fim", workers=args.workers)
            summary[name] = {
                "passed": sum(r.status == "passed" for r in result.records),
                "failed_ids": sorted(r.task_id for r in result.records if r.status != "passed"),
            }
    finally:
        backend.close()
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
