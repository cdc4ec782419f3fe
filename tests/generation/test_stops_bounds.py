"""Stop strings: bounded in number and length, and matched at a cost per token that does not
grow with the list (issue 12)."""

from __future__ import annotations

import random
import time

import pytest

from cgstudio.core.errors import InvalidInputError
from cgstudio.core.prompt import Prompt
from cgstudio.core.settings import GuardSettings, SamplingParams
from cgstudio.engine.fake import FakeEngine
from cgstudio.generation.pipeline import RunContext, run
from cgstudio.generation.stops import MAX_STOP_CHARS, MAX_STOP_STRINGS, StopMatcher, check_stop_strings
from cgstudio.server.service import clean_stop


def test_bounds_name_the_limit() -> None:
    assert check_stop_strings(["a", "", "b"]) == ["a", "b"]
    assert len(check_stop_strings(["x"] * MAX_STOP_STRINGS)) == MAX_STOP_STRINGS
    with pytest.raises(InvalidInputError, match=f"limit is {MAX_STOP_STRINGS}"):
        check_stop_strings(["x"] * (MAX_STOP_STRINGS + 1))
    with pytest.raises(InvalidInputError, match=f"limit is {MAX_STOP_CHARS}"):
        check_stop_strings(["x" * (MAX_STOP_CHARS + 1)])


def test_every_dialect_shares_clean_stop() -> None:
    assert clean_stop(None) is None
    assert clean_stop("") is None
    assert clean_stop(["", "\n\n"]) == ["\n\n"]
    with pytest.raises(InvalidInputError, match="10000 stop strings"):
        clean_stop([f"s{i}" for i in range(10_000)])
    with pytest.raises(InvalidInputError, match="1,000,000 characters"):
        clean_stop("x" * 1_000_000)


def test_pipeline_refuses_unbounded_stops_before_decoding() -> None:
    engine = FakeEngine([b"a"])
    prompt = Prompt(tokens=[2, 1000], mode="completion", stop_ids=frozenset())
    params = SamplingParams(stop=["x" * (MAX_STOP_CHARS + 1)])
    with pytest.raises(InvalidInputError):
        list(run(engine, prompt, params, GuardSettings(), RunContext("gemma")))
    assert engine.counters.evaluated_tokens == 0


class _Reference:
    """The straightforward matcher (find each stop, hold back the longest partial prefix)."""

    def __init__(self, stops: list[str]) -> None:
        self.stops, self.pending = stops, ""

    def feed(self, text: str) -> tuple[str, bool]:
        buf = self.pending + text
        hits = [(i, s) for s in self.stops if (i := buf.find(s)) >= 0]
        if hits:
            return buf[: min(hits)[0]], True
        hold = max((k for s in self.stops for k in range(1, len(s)) if buf.endswith(s[:k])), default=0)
        self.pending = buf[len(buf) - hold :]
        return buf[: len(buf) - hold], False


def test_matcher_agrees_with_the_reference_on_random_streams() -> None:
    rng = random.Random(12)
    for _ in range(3000):
        alphabet = "ab\n#"[: rng.randint(1, 4)]
        stops = ["".join(rng.choices(alphabet, k=rng.randint(1, 5))) for _ in range(rng.randint(1, 4))]
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 30)))
        ours, ref = StopMatcher(stops), _Reference(stops)
        i = 0
        while i < len(text):
            k = rng.randint(1, 4)
            got, want = ours.feed(text[i : i + k]), ref.feed(text[i : i + k])
            assert got == want, (stops, text)
            if got[1]:
                break
            i += k


def test_matching_cost_does_not_grow_with_the_stop_list() -> None:
    # 63 long stop strings that never match, then one whose prefix is always pending: the old
    # matcher sliced every stop string at every length for each token (~2 s for 2000 tokens).
    stops = ["b" * 511 + chr(99 + i) for i in range(MAX_STOP_STRINGS - 1)] + ["a" * 511 + "z"]
    matcher = StopMatcher(check_stop_strings(stops))
    t0 = time.perf_counter()
    out = [matcher.feed("a") for _ in range(2000)]
    elapsed = time.perf_counter() - t0
    assert "".join(t for t, _ in out) == "a" * (2000 - 511)
    assert elapsed < 0.5, f"{elapsed:.3f} s for 2000 tokens"
