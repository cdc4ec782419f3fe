"""Token healing on and off, on infilling prompts cut at the cursor mid-token (issue 16 §1).

Each task's cursor moves into its first masked word: the prompt gains the masked line's
indentation and the first half of its first word (at least one character), so the text before the
cursor ends partway through a token, as it does while a user types. Both runs use the editor
endings (``--guards editor``); only ``fim_token_healing`` differs. Prints a JSON summary.

    .venv/bin/python scripts/eval_healing.py infill-single --limit 40   # --limit 300: the full sample
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import replace
from pathlib import Path

from cgstudio.core.settings import load_settings
from cgstudio.evaluation.backends import open_local_backend
from cgstudio.evaluation.datasets import Task
from cgstudio.evaluation.protocol import EDITOR_GUARDS, select_tasks
from cgstudio.evaluation.runner import run_eval
from cgstudio.store.resolve import resolve


def cut_mid_token(task: Task) -> Task | None:
    """The task with its cursor inside the first word of the masked text; None without a word."""
    m = re.match(r"(\s*)(\w{2,})", task.canonical_solution)
    if m is None:
        return None
    cut = len(m.group(1)) + max(1, len(m.group(2)) // 2)
    moved = task.canonical_solution[:cut]
    return replace(
        task,
        task_id=task.task_id + "/mid-token",
        prompt=task.prompt + moved,
        canonical_solution=task.canonical_solution[cut:],
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task_set", choices=["infill-single", "infill-multi"])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tasks = [
        t for t in map(cut_mid_token, select_tasks(args.task_set, None, args.sample, args.sample_seed)) if t
    ]
    tasks = tasks[: args.limit] if args.limit else tasks
    settings = load_settings({})
    resolved = resolve(args.model, configured=settings.model)
    backend = open_local_backend(Path(resolved.path), resolved.alias, settings, 1, "editor")
    summary: dict[str, object] = {"task_set": args.task_set, "tasks": len(tasks), "model": resolved.alias}
    try:
        for healing in (False, True):
            backend.guards = {**EDITOR_GUARDS, "fim_token_healing": healing}
            result = run_eval(args.task_set, tasks, backend, style="fim", workers=args.workers)
            passed = sum(r.status == "passed" for r in result.records)
            lengths = [len(r.completion) for r in result.records]
            summary["healing_on" if healing else "healing_off"] = {
                "passed": passed,
                "pass_at_1": passed / len(result.records),
                "mean_chars": sum(lengths) / len(lengths),
            }
    finally:
        backend.close()
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
