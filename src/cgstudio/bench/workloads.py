"""Bench inputs: real code from the standard library, so every machine has the same files."""

from __future__ import annotations

import inspect
import uuid

from cgstudio.prompts.vocab import Vocab


def stdlib_source(name: str) -> str:
    module = __import__(name, fromlist=["_"])
    return inspect.getsource(module)


def code_of_tokens(vocab: Vocab, n_tokens: int, module: str = "argparse") -> str:
    """A prefix of a real module's source that is about ``n_tokens`` tokens long (whole lines)."""
    lines = stdlib_source(module).splitlines(keepends=True)
    out: list[str] = []
    count = 0
    for line in lines:
        t = len(vocab.plain(line))
        if count + t > n_tokens:
            break
        out.append(line)
        count += t
    return "".join(out)


def cold_marker() -> str:
    """A unique first line: no earlier prompt shares a prefix, so nothing can be reused."""
    return f"# run {uuid.uuid4().hex}\n"


EDIT_CODE = """def summarize(records, key, threshold=0.5, limit=None):
    totals = {}
    counts = {}
    for record in records:
        value = record.get(key)
        if value is None:
            continue
        group = record.get("group", "default")
        totals[group] = totals.get(group, 0.0) + float(value)
        counts[group] = counts.get(group, 0) + 1
    result = []
    for group, total in sorted(totals.items()):
        mean = total / counts[group]
        if mean < threshold:
            continue
        result.append({"group": group, "mean": round(mean, 3), "count": counts[group]})
        if limit is not None and len(result) >= limit:
            break
    return result
"""


def edit_messages() -> list[dict[str, str]]:
    """An edit-style request that copies most of its input: where prompt-lookup drafts pay off."""
    return [
        {
            "role": "user",
            "content": "Add type hints to this function. Keep every other line exactly as it is and reply "
            "with "
            f"the whole function in one python code block.\n\n```python\n{EDIT_CODE}```",
        }
    ]


GENERATION_MESSAGES = [
    {
        "role": "user",
        "content": "Write a Python module for a small library system: classes Book, Member and Library with "
        "methods to add books, register members, lend and return books, and list overdue loans. "
        "Include docstrings.",
    }
]

CONCURRENCY_PROMPTS = [
    "def merge_sorted(a, b):\n",
    "class LRUCache:\n    def __init__(self, capacity):\n",
    "def parse_csv_line(line, sep=','):\n",
    "def levenshtein(s, t):\n",
    "class Matrix:\n    def __init__(self, rows):\n",
    "def flatten(nested):\n",
    "def word_frequencies(text):\n",
    "def binary_search(items, target):\n",
]
