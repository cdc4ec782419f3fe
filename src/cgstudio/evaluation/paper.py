"""The CodeGemma paper's figures, the reference every ``cgstudio eval`` report shows beside its own.

Source: CodeGemma tech report, arXiv:2406.11409 (pass@1, percent, greedy). The 1.1 releases only
have HumanEval figures (from their model cards). One table, one place: the report, the ``--json``
document and EVALUATION.md all read it from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SOURCE = "CodeGemma tech report, arXiv:2406.11409 (1.1 releases: model cards)"

# Column order of every report table.
PAPER_MODELS: tuple[str, ...] = (
    "codegemma-2b",
    "codegemma-7b",
    "codegemma-7b-it",
    "codegemma-1.1-2b",
    "codegemma-1.1-7b-it",
)
MODEL_TITLES = {
    "codegemma-2b": "CodeGemma 2B",
    "codegemma-7b": "CodeGemma 7B",
    "codegemma-7b-it": "CodeGemma 7B-IT",
    "codegemma-1.1-2b": "CodeGemma 1.1 2B",
    "codegemma-1.1-7b-it": "CodeGemma 1.1 7B-IT",
}


@dataclass(frozen=True)
class Benchmark:
    task_set: str  # a key of datasets.TASK_SETS
    title: str
    n_tasks: int  # the full set, as the paper ran it
    pass_at_1: dict[str, float]  # paper model -> pass@1 in percent


BENCHMARKS: dict[str, Benchmark] = {
    "humaneval": Benchmark(
        "humaneval",
        "HumanEval",
        164,
        {
            "codegemma-2b": 31.1,
            "codegemma-7b": 44.5,
            "codegemma-7b-it": 56.1,
            "codegemma-1.1-2b": 37.8,
            "codegemma-1.1-7b-it": 60.4,
        },
    ),
    "infill-single": Benchmark(
        "infill-single",
        "HumanEval single-line infilling",
        1033,
        {"codegemma-2b": 78.41, "codegemma-7b": 76.09, "codegemma-7b-it": 68.25},
    ),
    "infill-multi": Benchmark(
        "infill-multi",
        "HumanEval multi-line infilling",
        5815,
        {"codegemma-2b": 51.44, "codegemma-7b": 58.44, "codegemma-7b-it": 20.05},
    ),
}

_SIZE = re.compile(r"(?:^|[^0-9.])([27])b(?:$|[^a-z0-9])", re.IGNORECASE)
_IT = re.compile(r"(?:^|[-_ .])(it|instruct|chat)(?:$|[-_ .])", re.IGNORECASE)
_V11 = re.compile(r"1[._]1(?:$|[^0-9])")


def paper_model(name: str, variant: str) -> str | None:
    """The paper column that ``name`` (a GGUF file or server model name plus its ``general.name``)
    is, e.g. ``"codegemma-1.1-7b-it"``; None when it is not a CodeGemma the paper reports.

    ``variant`` ("pretrained", "instruction-tuned" or "unknown") decides -it when the name does not.
    """
    if "codegemma" not in name.lower().replace(" ", "").replace("_", "-"):
        return None
    size = _SIZE.search(name)
    if size is None:
        return None
    it = bool(_IT.search(name)) or variant == "instruction-tuned"
    key = f"codegemma-{'1.1-' if _V11.search(name) else ''}{size.group(1).lower()}b{'-it' if it else ''}"
    return key if key in MODEL_TITLES else None


def paper_block(task_set: str, model_key: str | None) -> dict[str, Any]:
    """The ``paper`` part of the ``--json`` document: figures as fractions, like ``pass_at_1``."""
    bench = BENCHMARKS[task_set]
    figures = {m: round(v / 100, 6) for m, v in bench.pass_at_1.items()}
    return {
        "source": SOURCE,
        "benchmark": bench.title,
        "n_tasks": bench.n_tasks,
        "metric": "pass@1, greedy, as a fraction (like pass_at_1)",
        "pass_at_1": figures,
        "this_model": model_key,
        "this_model_pass_at_1": figures.get(model_key) if model_key else None,
    }
