"""Speculative next completion (``server/speculate.py``) through the server, on a tiny synthetic
CodeGemma: after an answer G to P, the request that accepts G (P+G) is computed while the server
is idle and answered from it (``timings.source: "speculative"``); any real request cancels it;
``--no-speculate-next`` and sampled answers start none. Asserts on counters and order, not time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from server_testing import Live, LiveFactory, isolated_settings

from cgstudio.cli.main import cli
from cgstudio.core.engine import DecodeRequest, Priority, TokenStream
from cgstudio.engine.fake import FakeEngine
from cgstudio.generation.pipeline import Result
from cgstudio.generation.timings import Timings, Usage
from cgstudio.server.prometheus import Metrics
from cgstudio.server.service import GenSpec
from cgstudio.server.speculate import Speculator
from cgstudio.server.typed_ahead import TypedAhead
from cgstudio.session.model import CodeModel
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

PREFIX = "def mean(values):\n    if not values:\n        return 0.0\n    "
SUFFIX = "\n    return total / len(values)\n"
# Under this stop string the synthetic model's greedy answer to PREFIX ends on it ("stop"), and
# so does its answer to PREFIX + that answer: both can be kept (checked in _accept_pair).
SAME = {"stop": ["int"]}
# The stop strings above were found for the PSM layout (the cursor line before the suffix); the
# editor layout (fim_cursor_line_in_middle) gives this random-weight model other answers. What is
# tested here, the speculation, does not depend on the layout.
PSM = {"fim_cursor_line_in_middle": False}


@pytest.fixture(scope="module")
def live(live_server: LiveFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    # Weights large enough that answers are not empty (at the default scale the model ends at once).
    path = write_codegemma_gguf(tmp_path_factory.mktemp("spec") / "codegemma-2b.gguf", weight_scale=0.5)
    with live_server({"cg": path}, n_ctx=512) as lv:
        yield lv


def _complete(live: Live, prompt: str, client: str, **extra: Any) -> dict[str, Any]:
    body = {"model": "cg", "prompt": prompt, "suffix": SUFFIX, "max_tokens": 16, "temperature": 0, **extra}
    body.setdefault("guards", PSM)
    r = httpx.post(live.url + "/v1/completions", json=body, headers={"X-Client-Id": client}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def _text(r: dict[str, Any]) -> str:
    return str(r["choices"][0]["text"])


def _metric(live: Live, name: str) -> float:
    live.settled()
    for line in httpx.get(live.url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(f"cgstudio_speculative_{name}_total "):
            return float(line.split()[1])
    raise AssertionError(f"cgstudio_speculative_{name}_total is not in /metrics")


def _counters(live: Live) -> tuple[int, int, int, int]:
    live.settled()
    engine = live.engine("cg")
    c = engine.counters
    return int(c.evaluated_tokens), int(c.generated_tokens), int(c.decode_calls), len(engine.requests)


def _real_requests(live: Live) -> int:
    """Engine requests other than speculations (which run at IDLE priority)."""
    live.settled()
    return sum(p != Priority.IDLE for p in live.engine("cg").priorities)


def _accept_pair(live: Live) -> tuple[str, str]:
    """G, the answer to PREFIX, and A, a cold answer to PREFIX + G (another client), both ended by
    the stop string."""
    first = _complete(live, PREFIX, "probe", **SAME)
    cold = _complete(live, PREFIX + _text(first), "probe-cold", **SAME)
    assert first["choices"][0]["finish_reason"] == "stop" and _text(first), first
    assert cold["choices"][0]["finish_reason"] == "stop" and len(_text(cold)) > 2, cold
    return _text(first), _text(cold)


def test_accepting_the_ghost_text_is_answered_from_the_speculation(live: Live) -> None:
    ghost, cold = _accept_pair(live)
    started, used = _metric(live, "started"), _metric(live, "used")
    r = _complete(live, PREFIX, "editor-1", **SAME)
    assert _text(r) == ghost and r["timings"]["source"] == "engine"
    assert _metric(live, "started") == started + 1  # it ran once the server was idle

    real = _real_requests(live)
    accepted = _complete(live, PREFIX + ghost, "editor-1", **SAME)
    assert _text(accepted) == cold  # what a cold run of that exact prompt gives
    assert accepted["choices"][0]["finish_reason"] == "stop"
    assert accepted["timings"]["source"] == "speculative"
    assert accepted["timings"]["prompt_tokens_evaluated"] == 0
    assert _real_requests(live) == real  # the accepted request touched no engine
    assert _metric(live, "used") == used + 1
    assert _metric(live, "started") == started + 2  # and the next acceptance is speculated on

    # Typing the first characters of the speculated answer, without its own request first: the
    # first is served from the speculation, the next from the ghost it became (typed-ahead).
    _complete(live, PREFIX, "editor-2", **SAME)
    live.settled()
    before = _counters(live)
    one = _complete(live, PREFIX + ghost + cold[:1], "editor-2", **SAME)
    assert _text(one) == cold[1:] and one["timings"]["source"] == "speculative"
    two = _complete(live, PREFIX + ghost + cold[:2], "editor-2", **SAME)
    assert _text(two) == cold[2:] and two["timings"]["source"] == "typed_ahead"
    assert _counters(live) == before
    assert _metric(live, "used") == used + 2


def test_accepting_ghost_after_ghost_is_answered_from_a_chain_of_speculations(live: Live) -> None:
    chain = {"stop": ["int", " cla"]}  # the synthetic model's first three answers all end on these
    texts, head = [], PREFIX
    for i in range(3):  # cold answers, one client each: G1 to PREFIX, G2 to PREFIX+G1, G3
        r = _complete(live, head, f"probe-chain-{i}", **chain)
        assert _text(r) and r["choices"][0]["finish_reason"] == "stop", r
        texts.append(_text(r))
        head += texts[-1]
    ghost, second, third = texts
    _complete(live, PREFIX, "editor-6", **chain)
    live.settled()
    real = _real_requests(live)
    a = _complete(live, PREFIX + ghost, "editor-6", **chain)
    assert (_text(a), a["timings"]["source"]) == (second, "speculative")
    live.settled()  # the speculation on accepting ``second`` finishes
    b = _complete(live, PREFIX + ghost + second, "editor-6", **chain)
    assert (_text(b), b["timings"]["source"]) == (third, "speculative")  # the chain's second link
    assert _real_requests(live) == real


def test_a_real_request_cancels_the_running_speculation(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = live.engine("cg")
    real_stream = engine.stream
    entered, released_by_cancel = threading.Event(), []

    def stream(request: DecodeRequest) -> TokenStream:
        if request.priority == Priority.IDLE:  # hold the speculation until a real request cancels it
            entered.set()
            assert request.cancel is not None
            released_by_cancel.append(request.cancel.wait(timeout=60))
        return real_stream(request)

    monkeypatch.setattr(engine, "stream", stream)
    started, cancelled = _metric(live, "started"), _metric(live, "cancelled")
    ghost = _text(_complete(live, PREFIX, "editor-3", **SAME))
    assert entered.wait(timeout=60), "no speculation started"

    other = _complete(live, "def other(x):\n    ", "editor-4", max_tokens=4)  # while it runs
    assert other["timings"]["source"] == "engine" and len(_text(other)) > 0
    assert _metric(live, "started") == started + 1
    assert _metric(live, "cancelled") == cancelled + 1
    assert released_by_cancel == [True]
    # A cancelled speculation keeps nothing: accepting goes to the engine.
    accepted = _complete(live, PREFIX + ghost, "editor-3", **SAME)
    assert accepted["timings"]["source"] == "engine"


def test_no_speculate_next_starts_no_background_work(live_server: LiveFactory, live: Live) -> None:
    path = live.app.state.registry.entries["cg"].path
    with live_server({"cg": path}, n_ctx=512, speculate_next=False) as off:
        r = _complete(off, PREFIX, "editor-5", **SAME)
        assert r["choices"][0]["finish_reason"] == "stop" and _text(r)
        assert _counters(off)[3] == 1  # the answer, and nothing after it
        assert _metric(off, "started") == 0
        accepted = _complete(off, PREFIX + _text(r), "editor-5", **SAME)
        assert accepted["timings"]["source"] == "engine"
        assert _counters(off)[3] == 2


@pytest.mark.parametrize(("flag", "on"), [((), True), (("--no-speculate-next",), False)])
def test_the_serve_flag_reaches_the_settings(
    flag: tuple[str, ...], on: bool, codegemma_paths: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    class Stop(Exception):
        pass

    def create_app(config: Any) -> None:
        seen.append(config.speculate_next)
        raise Stop

    monkeypatch.setattr("cgstudio.server.create_app", create_app)
    args = ["serve", "--model", str(codegemma_paths["control"]), "--parallel", "1", *flag]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, Stop) and seen == [on]


def _speculator(model: CodeModel) -> Speculator:
    registry: Any = None  # nothing runs: the server is never idle here
    return Speculator(True, TypedAhead(), Metrics(), registry, None, None, lambda: False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sampling", "profile_seed", "speculates"),
    [
        ({"temperature": 0}, None, True),
        ({"temperature": 0.5}, None, False),  # a sample: a fresh request could get another
        ({"temperature": 0.5, "seed": 7}, None, True),
        ({"temperature": 0.5}, 7, True),
        ({}, None, False),  # the profile's default temperature is 0.2
    ],
)
def test_only_reproducible_answers_are_speculated_on(
    sampling: dict[str, Any], profile_seed: int | None, speculates: bool
) -> None:
    settings = isolated_settings()
    settings.load.seed = profile_seed
    model = CodeModel(FakeEngine([b"x"]), settings, "m")
    entry: Any = SimpleNamespace(alias="m", model=model, loaded=True)
    spec = GenSpec("fim", prompt="def f(", suffix=")\n", sampling=sampling)
    result = Result("a, b", "eos", [], Usage(3, 2), Timings(None, None, None, 0.0), "fim")
    speculator = _speculator(model)
    speculator.offer("c", spec, entry, result)
    assert ("c" in speculator.waiting) is speculates
    if speculates:
        nxt = speculator.waiting["c"].spec
        assert nxt.prompt == "def f(a, b" and nxt.suffix == ")\n" and nxt.priority == Priority.IDLE
        for cut in ("length", "cancelled"):  # an answer cut short is not what the user sees whole
            speculator.offer("c", spec, entry, Result("a", cut, [], Usage(3, 1), result.timings, "fim"))
            assert "c" not in speculator.waiting
