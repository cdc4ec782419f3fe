"""FIM post-processing rules, fed in awkward chunk sizes."""

from __future__ import annotations

from cgstudio.generation.postprocess import FimRules


def feed_all(rules: FimRules, text: str, step: int = 3) -> int | None:
    for i in range(0, len(text), step):
        cut = rules.feed(text[i : i + step])
        if cut is not None:
            return cut
    return rules.finish()


def test_stops_where_completion_repeats_the_suffix_and_drops_blank_lines() -> None:
    suffix = '\n\nif __name__ == "__main__":\n    main()\n'
    out = '    return 42\n\n\nif __name__ == "__main__":\n    main()\n'
    rules = FimRules(suffix, "def main():\n")
    cut = feed_all(rules, out)
    assert cut is not None and out[:cut] == "    return 42"


def test_a_repeated_suffix_line_with_a_trailing_comment_counts() -> None:
    suffix = "\n\nprint([p for p in range(20) if is_prime(p)])\n"
    out = "    return True\n\n# Example usage\nprint([p for p in range(20) if is_prime(p)])  # [2, 3]\n"
    cut = feed_all(FimRules(suffix, "def is_prime(n):\n"), out)
    assert cut is not None and out[:cut] == "    return True\n\n# Example usage"


def test_short_suffix_line_needs_the_next_line_too() -> None:
    suffix = "\n}\nint main() {\n"
    inner = "    if (x) {\n        y();\n    }\n    return 1;\n"
    assert feed_all(FimRules(suffix, "int f(int x) {\n"), inner) is None  # "}" alone closes an inner block
    out = inner + "}\nint main() {\n"
    cut = feed_all(FimRules(suffix, "int f(int x) {\n"), out)
    assert cut is not None and out[:cut] == inner.rstrip("\n")


def test_trailing_partial_line_that_starts_the_suffix_is_dropped() -> None:
    suffix = "\n\nprint(add(1,2))\n"
    out = " return a + b\n\nprint(add(1,2"
    cut = feed_all(FimRules(suffix, "def add(a, b):\n   "), out)
    assert cut is not None and out[:cut] == " return a + b"


def test_single_line() -> None:
    cut = feed_all(FimRules("", "x = ", stop_at_suffix=False, single_line=True), "compute(1)\ny = 2\n")
    assert cut == len("compute(1)")


def test_block_end_from_a_blank_cursor_line() -> None:
    out = "    if n < 2:\n        return False\n    return True\n\n# Example usage\nprint(1)\n"
    rules = FimRules("", 'def f(n):\n    """Doc."""\n', stop_at_suffix=False, block_end=True)
    cut = feed_all(rules, out)
    # The blank line before the dedent is dropped (the code after the cursor brings its own).
    assert cut is not None and out[:cut] == "    if n < 2:\n        return False\n    return True\n"
    assert rules.rule == "block_end"


def test_block_end_after_indented_cursor() -> None:
    out = "x = 1\n    return x\nprint(2)\n"
    rules = FimRules("", "def f():\n    ", stop_at_suffix=False, block_end=True)
    cut = feed_all(rules, out)
    assert cut is not None and out[:cut] == "x = 1\n    return x\n"


def test_rules_off_never_cut() -> None:
    rules = FimRules("\nabcdef\n", "", stop_at_suffix=False)
    assert feed_all(rules, "abcdef\nabcdef\n") is None


SETTLED_CASES = [
    # (suffix, prefix tail, output, rules' flags)
    (
        "\n\nprint(is_prime(7))\n",
        "def is_prime(n: int) -> bool:\n",
        "    return n > 1\n\nprint(is_prime(7))  # True\n",
        {},
    ),
    ("\n\nprint(is_prime(7))\n", "def is_prime(n: int) -> bool:\n", "    return n > 1\n\nprint(is_prime", {}),
    (
        '\n\nif __name__ == "__main__":\n    main()\n',
        "def main():\n",
        '    return 42\n\n\nif __name__ == "__main__":\n',
        {},
    ),
    (
        "\n}\nint main() {\n",
        "int f(int x) {\n",
        "    if (x) {\n        y();\n    }\n    return 1;\n}\nint main() {\n",
        {},
    ),
    ("\n}\nint main() {\n", "int f(int x) {\n", "    if (x) {\n        y();\n    }\n    return 1;\n", {}),
    ("", "x = ", "compute(1)\ny = 2\n", {"stop_at_suffix": False, "single_line": True}),
    (
        "",
        'def f(n):\n    """Doc."""\n',
        "    if n < 2:\n        return False\n    return True\n\n# usage\nprint(1)\n",
        {"stop_at_suffix": False, "block_end": True},
    ),
    ("\nabcdef\n", "", "abcdef\nabcdef\n", {"stop_at_suffix": False}),
]


def _final(rules: FimRules, text: str, step: int) -> tuple[str, list[int]]:
    """The kept text, and ``settled()`` after each fed piece until a rule stops."""
    marks: list[int] = []
    for i in range(0, len(text), step):
        cut = rules.feed(text[i : i + step])
        if cut is not None:
            return text[:cut], marks
        marks.append(rules.settled())
    cut = rules.finish()
    return (text if cut is None else text[:cut]), marks


def test_settled_text_is_always_part_of_the_final_text() -> None:
    for suffix, tail, out, flags in SETTLED_CASES:
        for step in (1, 2, 5):
            final, marks = _final(FimRules(suffix, tail, **flags), out, step)
            assert marks == sorted(marks), (out, step)  # what was settled stays settled
            for mark in marks:
                assert final.startswith(out[:mark]) and mark <= len(final), (out, step, mark, final)


def test_settled_streams_lines_that_cannot_match_the_suffix_at_once() -> None:
    rules = FimRules("\n\nprint(is_prime(7))\n", "def is_prime(n):\n")
    rules.feed("    return n")
    assert rules.settled() == len("    return n")  # not the start of a suffix line: no wait
    rules.feed(" > 1\n")
    assert rules.settled() == len("    return n > 1")  # the newline waits: blank lines may be trimmed
    rules.feed("print(is")
    assert rules.settled() == len("    return n > 1")  # may become the suffix's line: held


def test_settled_without_active_rules_is_everything() -> None:
    rules = FimRules("", "x", stop_at_suffix=True)  # no suffix line to repeat
    rules.feed("a\n\n  ")
    assert rules.settled() == 5
