"""pass@1 with the middle starting k lines above the cursor: what the editor layout's anchor
costs or gains in quality (docs/server.md, "The text being typed after the middle token").

The editor layout puts the text from the anchor (a line start) to the cursor after the FIM middle
token; while the user types forward the anchor stays, so up to ``MAX_MIDDLE_LINES`` lines can sit
there. HumanEval's infilling tasks put the cursor at a line start, so the editor runs have k = 0.
This script moves the anchor k lines up for every task (``FixedDepth``) and runs the editor
endings (``--guards editor``) on the seeded sample. Prints a JSON summary.

    .venv/bin/python scripts/eval_anchor_depth.py infill-multi --depths 0,4,12
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cgstudio.core.settings import load_settings
from cgstudio.evaluation.backends import open_local_backend
from cgstudio.evaluation.protocol import EDITOR_GUARDS, select_tasks
from cgstudio.evaluation.runner import run_eval
from cgstudio.session.anchors import Anchors
from cgstudio.store.resolve import resolve


class FixedDepth(Anchors):
    """Every prompt split ``depth`` whole lines above the cursor's line (none when too short)."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        self.depth = depth

    def spans_lines(self, prefix: str, suffix: str) -> bool:
        return self.depth > 0 and self.split(prefix, suffix) is not None

    def split(self, prefix: str, suffix: str, tail: str = "") -> tuple[str, str] | None:
        starts = [i + 1 for i, ch in enumerate(prefix) if ch == "\n"]
        cursor_line = starts[-1] if starts else 0  # where the cursor's line starts
        above = [s for s in starts if s <= cursor_line]
        if len(above) <= self.depth:
            return None
        head_end = above[-1 - self.depth]
        return (prefix[:head_end], prefix[head_end:]) if head_end < len(prefix) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task_set", choices=["infill-single", "infill-multi"])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--depths", default="0,4,12")
    ap.add_argument("--sample", type=int, default=300)
    ap.add_argument("--sample-seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    tasks = select_tasks(args.task_set, args.limit, args.sample, args.sample_seed)
    settings = load_settings({})
    resolved = resolve(args.model, configured=settings.model)
    backend = open_local_backend(Path(resolved.path), resolved.alias, settings, 1, "editor")
    summary: dict[str, object] = {"task_set": args.task_set, "tasks": len(tasks), "model": resolved.alias}
    try:
        backend.guards = dict(EDITOR_GUARDS)
        for depth in (int(d) for d in args.depths.split(",")):
            backend.model.anchors = FixedDepth(depth)
            result = run_eval(args.task_set, tasks, backend, style="fim", workers=args.workers)
            passed = sum(r.status == "passed" for r in result.records)
            lengths = [len(r.completion) for r in result.records]
            summary[f"depth_{depth}"] = {
                "passed": passed,
                "pass_at_1": passed / len(result.records),
                "mean_chars": sum(lengths) / len(lengths),
            }
            print(json.dumps({f"depth_{depth}": summary[f"depth_{depth}"]}), flush=True)
    finally:
        backend.close()
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
