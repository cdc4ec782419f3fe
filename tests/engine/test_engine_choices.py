"""n choices from one prompt evaluation, on a real llama.cpp engine (a tiny synthetic CodeGemma GGUF).

The scheduler evaluates the prompt in choice 0's sequence, shares its KV cells with the other
choices' sequences and samples each on its own. The evaluated-token counter tells one prompt
evaluation from n.
"""

from __future__ import annotations

import threading

import pytest

from cgstudio.core.engine import DecodeRequest, Engine, SamplerConfig, TokenStream
from cgstudio.core.errors import InvalidInputError
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

PROMPT_TEXT = "def mean(values):\n    if not values:\n        return 0.0\n    total = sum(values)\n"
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> LlamaCppEngine:
    # Weights large enough that answers depend on the context (see test_kv_reuse_exact).
    path = write_codegemma_gguf(tmp_path_factory.mktemp("n") / "codegemma-2b.gguf", weight_scale=0.5)
    eng = LlamaCppEngine(path, LoadProfile.model_validate({"n_ctx": 512, "n_parallel": 3}))
    yield eng
    eng.close()


def _request(engine: Engine, n: int, sampler: SamplerConfig, **kw: object) -> DecodeRequest:
    tokens = [2, *engine.tokenize(PROMPT_TEXT)]
    # cache=False: every run evaluates its prompt cold, whatever earlier tests left in the slots.
    return DecodeRequest(
        tokens=tokens, max_tokens=MAX_TOKENS, sampler=sampler, speculative=False, cache=False, n=n, **kw
    )


def _fed_back(streams: list[TokenStream]) -> int:
    """Generated tokens that went back through the model: all but a last one cut by max_tokens."""
    return sum(s.stats.n_generated - (s.stats.finish in ("max_tokens", "context")) for s in streams)


def _read_all(streams: list[TokenStream]) -> list[list[int]]:
    return [[t for t in s if isinstance(t, int)] for s in streams]


def test_three_choices_cost_one_prompt_evaluation(engine: LlamaCppEngine) -> None:
    req = _request(engine, 3, SamplerConfig(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0, seed=7))
    before = engine.counters.evaluated_tokens
    streams = engine.stream_choices(req)
    outs = _read_all(streams)
    evaluated = engine.counters.evaluated_tokens - before
    n_prompt = len(req.tokens)
    assert evaluated == n_prompt + _fed_back(streams)  # n separate requests: 3 * n_prompt + ...
    assert [s.stats.n_prompt_evaluated for s in streams] == [n_prompt, 0, 0]
    assert [s.stats.n_shared for s in streams] == [0, n_prompt, n_prompt]
    assert all(len(o) == s.stats.n_generated > 0 for o, s in zip(outs, streams, strict=True))
    # Each choice has its own seed (7, 8, 9): at temperature 1 they part ways.
    assert len({tuple(o) for o in outs}) > 1


def test_the_same_choices_as_separate_requests_cost_three_evaluations(engine: LlamaCppEngine) -> None:
    """The counter can tell them apart: the contract's default (one request per choice) pays 3x."""
    req = _request(engine, 3, SamplerConfig(temperature=0.0))
    before = engine.counters.evaluated_tokens
    streams = Engine.stream_choices(engine, req)
    _read_all(streams)
    assert engine.counters.evaluated_tokens - before == 3 * len(req.tokens) + _fed_back(streams)


def test_greedy_choices_decode_the_shared_prompt_like_a_single_request(engine: LlamaCppEngine) -> None:
    """At temperature 0 every choice must follow the one-sequence answer: a follower whose copied
    KV cells were wrong (missing, or another prompt's) would part ways after its first token."""
    single = _read_all([engine.stream(_request(engine, 1, SamplerConfig(temperature=0.0)))])[0]
    outs = _read_all(engine.stream_choices(_request(engine, 3, SamplerConfig(temperature=0.0))))
    assert outs[0] == outs[1] == outs[2]
    assert outs[1][:4] == single[:4]  # the same logits; later a 3-row step may round differently


def test_more_choices_than_slots_are_refused_before_decoding(engine: LlamaCppEngine) -> None:
    before = engine.counters.decode_calls
    with pytest.raises(InvalidInputError, match="n=4"):
        engine.stream_choices(_request(engine, 4, SamplerConfig(temperature=0.0)))
    assert engine.counters.decode_calls == before
    assert engine.max_choices == 3


def test_choices_wait_for_free_slots_and_the_others_run_on_when_one_is_closed(engine: LlamaCppEngine) -> None:
    """A 3-choice request queued behind a running one starts when all 3 slots are free; closing
    one choice early frees its slot without ending the others."""
    busy = engine.stream(_request(engine, 1, SamplerConfig(temperature=0.0)))
    first = next(busy)  # one slot is taken
    streams = engine.stream_choices(_request(engine, 3, SamplerConfig(temperature=0.5, seed=1)))
    done = threading.Event()

    def drain() -> None:
        list(busy)
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    next(streams[1])
    streams[1].close()
    rest = _read_all([streams[0], streams[2]])
    assert done.wait(30) and isinstance(first, int)
    assert [s.stats.finish for s in (streams[0], streams[2])] != ["cancelled", "cancelled"]
    for o, s in zip(rest, (streams[0], streams[2]), strict=True):
        assert s.stats.finish in ("max_tokens", "stop_token") and len(o) == s.stats.n_generated
