"""Prompt-lookup drafting and its acceptance bookkeeping (``engine.llamacpp.speculative``): no model."""

from __future__ import annotations

import pytest

from cgstudio.engine.llamacpp.speculative import (
    MAX_DRAFT,
    NGRAM_MIN,
    SPEC_MIN_ACCEPT,
    SPEC_PROBE,
    accepted_count,
    draft,
    keeps_speculating,
    starts_speculating,
)


def test_a_repeated_ngram_drafts_what_followed_it() -> None:
    history = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3]
    assert draft(history) == [4, 5, 6, 7, 1, 2, 3]


def test_the_draft_is_capped() -> None:
    line = list(range(100, 120))
    history = line + line[:4]
    assert draft(history) == line[4 : 4 + MAX_DRAFT]
    assert draft(history, limit=3) == line[4:7]
    assert draft(history, limit=0) == []


def test_the_latest_earlier_occurrence_wins() -> None:
    assert draft([1, 2, 9, 5, 1, 2, 8, 6, 1, 2]) == [8, 6, 1, 2]


def test_the_longest_ngram_wins() -> None:
    # [5, 1, 2] occurred once, followed by 7; the 2-gram [1, 2] occurred later, followed by 8.
    history = [5, 1, 2, 7, 0, 1, 2, 8, 0, 5, 1, 2]
    assert draft(history) == [7, 0, 1, 2, 8, 0, 5, 1]


def test_code_repeating_a_line_drafts_its_continuation() -> None:
    a, b, c = [10, 11, 12, 13], [20, 21, 22], [30, 31]
    history = [*a, *b, *c, 99, *a]  # the model started writing line a again
    assert draft(history)[:5] == [*b, *c]


def test_no_draft_on_novel_text() -> None:
    assert draft(list(range(200))) == []
    assert draft([1, 2, 3, 1, 5]) == []  # only a 1-gram repeats: below NGRAM_MIN
    assert NGRAM_MIN == 2


@pytest.mark.parametrize("history", [[], [4], [4, 4]])
def test_no_draft_on_a_short_history(history: list[int]) -> None:
    assert draft(history) == []


def test_a_run_of_one_token_drafts_more_of_it() -> None:
    assert draft([5] * 6) == [5]  # the latest earlier 4-gram is followed by one token


def test_draft_does_not_change_the_history() -> None:
    history = [1, 2, 3, 1, 2]
    draft(history)
    assert history == [1, 2, 3, 1, 2]


def test_accepted_count_is_the_confirmed_prefix() -> None:
    assert accepted_count([4, 5, 6], [4, 5, 6, 7]) == 3  # all accepted, plus the bonus token
    assert accepted_count([4, 5, 6], [4, 9]) == 1  # rejected at the second draft
    assert accepted_count([4, 5, 6], [9]) == 0
    assert accepted_count([4, 5, 6], [4]) == 1  # the sequence ended after one token
    assert accepted_count([4, 5, 6], []) == 0  # it ended on a stop token
    assert accepted_count([], [4]) == 0


@pytest.mark.parametrize(
    ("mode", "requested", "greedy", "expected"),
    [
        ("auto", None, False, True),
        ("auto", None, True, False),  # greedy output must be plain decoding's, token for token
        ("on", None, False, True),
        ("on", None, True, True),
        ("off", None, False, False),
        ("off", True, True, True),
        ("on", False, False, False),
        ("auto", False, False, False),
        ("auto", True, True, True),  # the request's explicit choice wins
    ],
)
def test_starts_speculating(mode: str, requested: bool | None, greedy: bool, expected: bool) -> None:
    assert starts_speculating(mode, requested, greedy) is expected


def test_auto_stops_drafting_after_a_probe_with_low_acceptance() -> None:
    low = int(SPEC_PROBE * SPEC_MIN_ACCEPT) - 1
    assert keeps_speculating("auto", None, SPEC_PROBE - 1, 0)  # still probing
    assert not keeps_speculating("auto", None, SPEC_PROBE, low)
    assert keeps_speculating("auto", None, SPEC_PROBE, SPEC_PROBE)  # all accepted
    assert keeps_speculating("auto", None, 100, 35)  # exactly the minimum rate
    assert not keeps_speculating("auto", None, 100, 34)


def test_an_explicit_choice_is_never_overridden() -> None:
    assert keeps_speculating("on", None, 1000, 0)
    assert keeps_speculating("auto", True, 1000, 0)
