"""The editor endings (issue 16 §1) on scripted engine outputs: each rule cuts where it should,
names itself in ``stop_rule``, streams only what it keeps, and is off off editor paths."""

from __future__ import annotations

import pytest

from cgstudio.core.prompt import Prompt
from cgstudio.core.settings import GuardSettings, SamplingParams, load_settings
from cgstudio.engine.fake import BOS, FakeEngine
from cgstudio.evaluation.protocol import EDITOR_GUARDS, EVAL_GUARDS, SUFFIX_GUARDS
from cgstudio.generation.pipeline import Result, RunContext, run
from cgstudio.server.protocol.common import GuardOverrides

ENDINGS = ("fim_block_end", "fim_line_end", "fim_bracket_overlap", "fim_token_healing")


def _run(
    pieces: list[str],
    prefix_tail: str,
    suffix: str,
    *,
    path: str | None = None,
    editor: bool = True,
    heal: str = "",
    forces_start: bool = False,
    **guards: bool,
) -> tuple[str, Result, FakeEngine]:
    engine = FakeEngine([p.encode() for p in pieces], end_with_eos=False, forces_start=forces_start)
    prompt = Prompt(
        tokens=[BOS, 1000 + ord("x")],
        mode="fim",
        stop_ids=frozenset({1}),
        suffix=suffix,
        prefix_tail=prefix_tail,
        editor=editor,
        path=path,
        heal=heal,
    )
    chunks = list(
        run(engine, prompt, SamplingParams(max_tokens=64), GuardSettings(**guards), RunContext("gemma"))
    )
    result = chunks[-1].result
    assert result is not None
    streamed = "".join(c.text for c in chunks)
    assert streamed == result.text  # nothing streamed that a rule later cut
    return streamed, result, engine


MEAN = ["return sum(xs)", " / len(xs)\n", "\n", "def median(xs):\n", "    return sorted(xs)[0]\n"]


def test_block_end_by_indentation_stops_inside_mean() -> None:
    # The case: ghost text inside mean() went on to write more functions.
    text, result, _ = _run(MEAN, "def mean(xs):\n    ", "\n\nprint(mean([1, 2]))\n")
    assert text == "return sum(xs) / len(xs)"
    assert (result.finish_reason, result.stop_rule) == ("stop", "block_end")


def test_block_widens_to_an_indented_suffix_but_never_to_the_top_level() -> None:
    # Infilling inside a loop whose code after the cursor is back at the function's level: the hole
    # may close the loop (HumanEval/5 L6_L9); it may not go on to write a new function.
    pieces = ["        out.append(n)\n", "\n", "    out.append(xs[-1])\n", "def g():\n", "    pass\n"]
    text, result, _ = _run(pieces, "def f(xs):\n    out = []\n    for n in xs[:-1]:\n", "\n    return out\n")
    assert text == "        out.append(n)\n\n    out.append(xs[-1])"
    assert result.stop_rule == "block_end"


def test_block_end_off_per_request_and_off_editor_paths() -> None:
    full = "".join(MEAN)
    text, result, _ = _run(MEAN, "def mean(xs):\n    ", "\n\nprint(1)\n", fim_block_end=False)
    assert text == full and result.stop_rule is None
    text, result, _ = _run(MEAN, "def mean(xs):\n    ", "\n\nprint(1)\n", editor=False)
    assert text == full and result.stop_rule is None


def test_block_end_by_braces_keeps_the_closing_brace() -> None:
    pieces = ["return x", " * 2;\n}\n", "\nfunction g() {\n", "  return 1;\n}\n"]
    text, result, _ = _run(pieces, "function f(x) {\n  ", "", path="a.js")
    assert text == "return x * 2;\n}"
    assert result.stop_rule == "block_end"


def test_brace_block_that_the_suffix_closes_ends_before_its_brace() -> None:
    pieces = ["if (x) {", " y(); }\n", "  return 1;\n", "}\nint g() {}\n"]
    text, result, _ = _run(pieces, "int f(int x) {\n  ", "\n}\n", path="a.c")
    assert text == "if (x) { y(); }\n  return 1;"  # the inner braces balance; the outer is the suffix's
    assert result.stop_rule == "bracket_overlap"


def test_line_end_completes_the_cursor_line_only_without_retyping_its_rest() -> None:
    text, result, _ = _run([" > 0", ":\n", "    y = 1\n"], "if x", ":\n    pass\n")
    assert text == " > 0"
    assert result.stop_rule == "line_end"
    text, result, _ = _run([" > 0", ":\n", "    y = 1\n"], "if x", ":\n    pass\n", fim_line_end=False)
    assert text.startswith(" > 0:\n")


def test_cursor_at_a_line_start_is_not_mid_line() -> None:
    # Infilling: the cursor at column 0 of a non-empty line inserts whole lines above it.
    pieces = ["    a = 1\n", "    b = 2\n"]
    text, result, _ = _run(pieces, "def f():\n", "    return a + b\n", fim_block_end=False)
    assert text == "    a = 1\n    b = 2\n" and result.stop_rule is None


@pytest.mark.parametrize(
    ("tail", "suffix", "pieces", "kept"),
    [
        ('print("hel', '")\n', ["lo", '")', "\nprint(2)\n"], "lo"),
        ("total = add(a, ", "b)\n", ["c, ", "b)", " + 1\n"], "c, "),  # the re-typed "b" goes too
        ("xs = [\n    1,\n    ", "\n]\n", ["2,\n", "]\n", "print(xs)\n"], "2,"),
        ("f(g(", "))\n", ["x", "))\n"], "x"),
    ],
)
def test_bracket_overlap_never_duplicates_a_closer_the_suffix_has(
    tail: str, suffix: str, pieces: list[str], kept: str
) -> None:
    text, result, _ = _run(pieces, tail, suffix)
    assert text == kept
    assert result.stop_rule == "bracket_overlap"


def test_inner_brackets_and_strings_are_not_the_enclosing_closer() -> None:
    pieces = ["a(1)", ', ")"', ", b)\n"]
    text, result, _ = _run(pieces, "f(", ")\n")
    assert text == 'a(1), ")", b'
    assert result.stop_rule == "bracket_overlap"


def test_bracket_overlap_off_keeps_the_closer() -> None:
    text, result, _ = _run(["lo", '")'], 'print("hel', '")\n', fim_bracket_overlap=False, fim_line_end=False)
    assert text == 'lo")' and result.stop_rule is None


def test_healing_asks_the_engine_and_emits_only_what_follows() -> None:
    # The prompt lost its trailing " " (Prompt.heal); the engine's first token starts with it.
    text, _, engine = _run([" a", " + b\n"], "    return ", "\n", heal=" ", forces_start=True)
    assert engine.requests[0].starts_with == " "
    assert text == "a + b\n"  # no doubled space after "return "
    # A healed text split over tokens (the prompt's own tokenization) is dropped whole.
    text, _, _ = _run(["ma", "x(xs)\n"], "    return ", "\n", heal="max", forces_start=True)
    assert text == "(xs)\n"


def test_output_that_ignores_the_healing_constraint_is_kept() -> None:
    text, _, _ = _run(["a + b\n"], "    return ", "\n", heal=" ")
    assert text == "a + b\n"


def test_editor_endings_are_on_by_default_and_off_per_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    assert all(getattr(GuardSettings(), k) for k in ENDINGS)
    monkeypatch.setenv("CGSTUDIO_GUARDS__FIM_LINE_END", "false")
    assert load_settings().guards.fim_line_end is False
    overrides = GuardOverrides.model_validate({k: False for k in ENDINGS})
    assert GuardSettings(**overrides.model_dump(exclude_none=True)) == GuardSettings(
        **{k: False for k in ENDINGS}
    )


def test_paper_protocol_and_suffix_guards_turn_every_ending_off() -> None:
    for guards in (EVAL_GUARDS, SUFFIX_GUARDS):
        settings = GuardSettings(**guards)
        assert not any(getattr(settings, k) for k in ENDINGS)
    assert all(EDITOR_GUARDS[k] for k in ENDINGS)
    full = "".join(MEAN)
    text, result, _ = _run(MEAN, "def mean(xs):\n    ", "\n\nprint(1)\n", **EVAL_GUARDS)
    assert text == full and result.finish_reason == "length" and result.stop_rule is None
