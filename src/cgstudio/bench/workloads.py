"""Bench inputs: real code from the standard library, so every machine has the same files."""

from __future__ import annotations

import inspect
import uuid
from dataclasses import dataclass

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


@dataclass(frozen=True)
class KeystrokeCase:
    path: str
    before: str  # text before the cursor, up to the start of the typed text
    after: str
    typed: str  # what the user types, one character per request

    def request(self, i: int) -> tuple[str, str]:
        return self.before + self.typed[: i + 1], self.after


def keystroke_case(
    vocab: Vocab, n_tokens: int = 2000, keystrokes: int = 20, at: float = 0.6
) -> KeystrokeCase:
    """A real ~n_tokens-token Python file with the cursor inside a function, about ``at`` of the
    way down the file (a share of its lines)."""
    text = code_of_tokens(vocab, n_tokens, "argparse")
    lines = text.splitlines(keepends=True)
    start = int(len(lines) * at)
    idx = next(
        (
            i
            for i in range(start, len(lines))
            if lines[i].startswith("        ") and lines[i].strip() and len(lines[i].strip()) >= keystrokes
        ),
        start,
    )
    line = lines[idx]
    indent = line[: len(line) - len(line.lstrip())]
    typed = line.strip()[:keystrokes]
    before = "".join(lines[:idx]) + indent
    # The user is writing this line anew: the rest of the file follows the cursor.
    after = "\n" + "".join(lines[idx + 1 :])
    return KeystrokeCase("argparse_part.py", before, after, typed)


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
