"""Typed-ahead (``server/typed_ahead.py``): the rest of the ghost text, once its start is typed. No model."""

from __future__ import annotations

from typing import Any

import pytest

from cgstudio.server.service import GenSpec
from cgstudio.server.typed_ahead import Ghost, TypedAhead, ghost_of, request_key, spec_key

KEY = "k"


def _store(text: str = "total = sum(values)", finish: str = "stop") -> TypedAhead:
    store = TypedAhead()
    store.remember("c", Ghost(KEY, "def f(values):\n    ", text, finish))
    return store


def test_typing_the_start_of_the_ghost_text_serves_the_rest() -> None:
    store = _store()
    hit = store.lookup("c", KEY, "def f(values):\n    tot")
    assert hit is not None and hit.text == "al = sum(values)" and hit.typed == "tot"
    # The hit is the client's ghost now: the next character hits again.
    hit = store.lookup("c", KEY, "def f(values):\n    tota")
    assert hit is not None and hit.text == "l = sum(values)"
    assert store.hits == 2


@pytest.mark.parametrize(
    "head",
    [
        "def f(values):\n    ",  # nothing typed: a retry goes to the engine
        "def f(values):\n    tox",  # typed something else
        "def f(values):\n    total = sum(values)",  # typed all of it: nothing left to offer
        "def g(values):\n    tot",  # an edit before the cursor
    ],
)
def test_no_hit_unless_the_typed_text_is_a_proper_start_of_the_ghost(head: str) -> None:
    assert _store().lookup("c", KEY, head) is None


def test_no_hit_for_another_client_or_another_request_key() -> None:
    store = _store()
    assert store.lookup("other", KEY, "def f(values):\n    tot") is None
    assert store.lookup("c", "another key", "def f(values):\n    tot") is None


@pytest.mark.parametrize("finish", ["length", "cancelled", "repetition", "tool_calls"])
def test_a_ghost_that_did_not_end_on_its_own_is_not_kept(finish: str) -> None:
    assert _store(finish=finish).lookup("c", KEY, "def f(values):\n    tot") is None


def test_an_unusable_result_forgets_the_older_ghost() -> None:
    store = _store()
    store.remember("c", Ghost(KEY, "x", "", "eos"))  # an empty answer
    assert store.lookup("c", KEY, "def f(values):\n    tot") is None


def test_the_store_is_bounded() -> None:
    store = TypedAhead(max_clients=2)
    for c in ("a", "b", "c"):
        store.remember(c, Ghost(KEY, "h", "text", "eos"))
    assert store.lookup("a", KEY, "ht") is None  # the least recently used was dropped
    assert store.lookup("c", KEY, "ht") is not None


def _spec(**kw: Any) -> GenSpec:
    return GenSpec(**{"mode": "fim", "prompt": "def f(", "suffix": ")\n", **kw})


def test_the_key_ignores_only_the_text_before_the_cursor() -> None:
    base = spec_key(_spec(), "m")
    assert base is not None
    assert spec_key(_spec(prompt="def f(x"), "m") == base
    assert spec_key(_spec(suffix="):\n"), "m") != base
    assert spec_key(_spec(), "other-model") != base
    assert spec_key(_spec(sampling={"temperature": 0.5}), "m") != base
    assert spec_key(_spec(path="a.py"), "m") != base
    assert spec_key(_spec(guards={"fim_single_line": True}), "m") != base


@pytest.mark.parametrize(
    "spec",
    [
        GenSpec(mode="chat", messages=[{"role": "user", "content": "hi"}]),
        GenSpec(mode="plain", prompt="x"),
        GenSpec(mode="fim", prompt="x", sampling={"n": 3}),
        GenSpec(mode="fim", prompt="x", prewarm=True),
    ],
)
def test_requests_that_never_take_part(spec: GenSpec) -> None:
    assert spec_key(spec, "m") is None


def test_request_key_accepts_n_one() -> None:
    assert request_key("m", {"mode": "infill", "sampling": {"n": 1}}) is not None


def test_ghost_of_an_infill_uses_prefix_and_cursor_line() -> None:
    from cgstudio.generation.pipeline import Result
    from cgstudio.generation.timings import Timings, Usage

    r = Result("x)", "eos", [], Usage(1, 1), Timings(None, None, None, 0.0), "infill")
    ghost = ghost_of(GenSpec(mode="infill", prompt="a\n", middle="f("), "m", r)
    assert ghost is not None and ghost.head == "a\nf(" and ghost.text == "x)"
