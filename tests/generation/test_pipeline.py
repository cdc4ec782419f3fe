"""Pipeline behaviour on a scripted engine: stops, UTF-8, honest rates, empty-output diagnosis."""

from __future__ import annotations

from cgstudio.core.prompt import Prompt
from cgstudio.core.settings import GuardSettings, SamplingParams
from cgstudio.engine.fake import BOS, FakeEngine
from cgstudio.generation.pipeline import Result, RunContext, run
from cgstudio.generation.stops import StopMatcher, Utf8Stream


def _run(
    engine: FakeEngine,
    *,
    stop: list[str] | None = None,
    tokens: list[int] | None = None,
    mode: str = "completion",
    max_tokens: int = 64,
    family: str = "gemma",
) -> tuple[list[str], Result]:
    prompt = Prompt(tokens=tokens or [BOS, 1000 + ord("x")], mode=mode, stop_ids=frozenset({1}))  # type: ignore[arg-type]
    chunks = list(
        run(
            engine,
            prompt,
            SamplingParams(stop=stop or [], max_tokens=max_tokens),
            GuardSettings(),
            RunContext(family),
        )
    )
    result = chunks[-1].result
    assert result is not None
    return [c.text for c in chunks if c.text], result


def test_stop_string_split_across_tokens_never_leaks() -> None:
    texts, result = _run(FakeEngine([b"abc", b"\n##", b"#", b" END", b"tail"]), stop=["### END"])
    assert "".join(texts) == "abc\n"
    assert result.text == "abc\n"
    assert result.finish_reason == "stop"


def test_partial_stop_prefix_is_released_when_it_does_not_match() -> None:
    texts, result = _run(FakeEngine([b"a#", b"#b"]), stop=["###"])
    assert "".join(texts) == "a##b"
    assert result.finish_reason == "eos"


def test_utf8_character_split_over_tokens_is_whole_in_one_chunk() -> None:
    snake = "🐍".encode()
    texts, result = _run(FakeEngine([b"x", snake[:2], snake[2:], b"y"]))
    assert result.text == "x🐍y"
    assert all("\ufffd" not in t for t in texts)
    assert "🐍" in texts


def test_rates_are_none_under_two_tokens() -> None:
    _, one = _run(FakeEngine([b"x"]))
    assert one.usage.completion_tokens == 1
    assert one.timings.generation_tokens_per_s is None
    _, zero = _run(FakeEngine([]))
    assert zero.timings.generation_tokens_per_s is None
    assert zero.timings.time_to_first_token_s is None


def test_empty_output_is_diagnosed_with_first_token_eos_and_foreign_markup() -> None:
    engine = FakeEngine([])
    prompt_text = "<s>[INST] write code [/INST]"
    tokens = [BOS, *engine.tokenize(prompt_text)]
    _, result = _run(engine, tokens=tokens)
    codes = [w.code for w in result.warnings]
    assert codes == ["empty_output"]
    msg = result.warnings[0].message
    assert "first sampled token was an end token" in msg
    assert "llama-2" in msg
    assert result.finish_reason == "eos"


def test_empty_output_diagnoses_missing_and_doubled_bos() -> None:
    engine = FakeEngine([b"  "])
    _, missing = _run(engine, tokens=[1000 + ord("x")])
    assert "lacks the BOS" in missing.warnings[0].message
    _, doubled = _run(FakeEngine([]), tokens=[BOS, BOS, 1000 + ord("x")])
    assert "2 BOS tokens" in doubled.warnings[0].message


def test_stop_string_at_position_zero_is_named() -> None:
    _, result = _run(FakeEngine([b"\n\n", b"x"]), stop=["\n\n"])
    assert result.text == ""
    assert "matched at position 0" in result.warnings[0].message


def test_max_tokens_gives_length() -> None:
    _, result = _run(FakeEngine([b"a", b"b", b"c"], end_with_eos=False), max_tokens=2)
    assert result.text == "ab"
    assert result.finish_reason == "length"


def _fim(pieces: list[str], suffix: str, *, max_tokens: int = 64) -> tuple[list[str], Result]:
    engine = FakeEngine([p.encode() for p in pieces], end_with_eos=False)
    prompt = Prompt(
        tokens=[BOS, 1000 + ord("x")],
        mode="fim",
        stop_ids=frozenset({1}),
        suffix=suffix,
        prefix_tail="def is_prime(n: int) -> bool:\n",
    )
    chunks = list(
        run(engine, prompt, SamplingParams(max_tokens=max_tokens), GuardSettings(), RunContext("gemma"))
    )
    result = chunks[-1].result
    assert result is not None
    return [c.text for c in chunks if c.text], result


IS_PRIME = [
    "    if",
    " n < 2:\n",
    "        return False\n",
    "    return True\n",
    "\n",
    "print(",
    "is_prime(7))",
    "  # True\n",
]


def test_fim_streams_only_what_the_rules_keep() -> None:
    # The example: the model restates the suffix's line with a comment; the terminal
    # showed it although the final text ended at `return True`.
    texts, result = _fim(IS_PRIME, "\n\nprint(is_prime(7))\n")
    assert result.text == "    if n < 2:\n        return False\n    return True"
    assert "".join(texts) == result.text
    assert len(texts) > 2  # still streamed as it came, not in one piece at the end


def test_fim_partial_suffix_line_at_the_token_limit_is_never_streamed() -> None:
    # -n cuts the output inside `print(is_prime`: the end-of-output rule drops it.
    texts, result = _fim(IS_PRIME, "\n\nprint(is_prime(7))\n", max_tokens=7)
    assert result.finish_reason == "length"
    assert result.text == "    if n < 2:\n        return False\n    return True"
    assert "".join(texts) == result.text


def test_fim_text_after_a_stop_is_released_at_the_end() -> None:
    texts, result = _fim(["    return n", " > 1\n", "\n"], "\n\nprint(is_prime(7))\n")
    assert result.text == "    return n > 1\n\n"
    assert "".join(texts) == result.text
    assert texts[0] == "    return n"  # a line that cannot repeat the suffix is not held


def test_stop_matcher_and_utf8_stream_units() -> None:
    m = StopMatcher(["<END>"])
    assert m.feed("ab<E") == ("ab", False)
    assert m.feed("N") == ("", False)
    assert m.feed("D>zz") == ("", True)
    u = Utf8Stream()
    e = "é".encode()
    assert u.feed(e[:1]) == ""
    assert u.feed(e[1:]) == "é"
