"""KV reuse along a typing trace, on a real llama.cpp engine (a tiny synthetic CodeGemma GGUF).

An editor sends one FIM request a keystroke: the prefix grows by one character, the suffix stays.
By default only the exact common prefix is reused, so each greedy answer must equal a cold run's.
Shifted reuse (``kv_shift_reuse``, opt-in) also keeps the suffix's cells, computed under an older
prefix: fewer tokens evaluated, but answers that can differ from a cold run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cgstudio.core.engine import DecodeRequest, DecodeStats, SamplerConfig
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.testing.synthetic_gguf import (
    BOS_ID,
    FILE_SEPARATOR_ID,
    FIM_MIDDLE_ID,
    FIM_PREFIX_ID,
    FIM_SUFFIX_ID,
    write_codegemma_gguf,
)

PREFIX = "def mean(values):\n    if not values:\n        return 0.0\n    "
TYPED = "total = sum(values)"
# Far longer than cache_reuse (32 tokens): shifted reuse, when on, takes all of it.
SUFFIX = "\n    return total / len(values)\n\n\n" + "".join(
    f"def check_{i}():\n    assert mean([{i}, {i + 2}]) == {i + 1}\n\n" for i in range(6)
)


FIM_STOPS = frozenset({FIM_PREFIX_ID, FIM_MIDDLE_ID, FIM_SUFFIX_ID, FILE_SEPARATOR_ID})


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Weights large enough that greedy answers depend on the context (at the helper's default
    # scale every answer repeats the last prompt token), so a stale cache shows in the token ids.
    return write_codegemma_gguf(tmp_path_factory.mktemp("kv") / "codegemma-2b.gguf", weight_scale=0.5)


def _engine(path: Path, **load: object) -> LlamaCppEngine:
    return LlamaCppEngine(path, LoadProfile.model_validate({"n_ctx": 1024, **load}))


def _trace(engine: LlamaCppEngine) -> list[list[int]]:
    """The FIM prompts of the keystrokes, in the order an editor sends them."""
    suffix = engine.tokenize(SUFFIX)
    return [
        [BOS_ID, FIM_PREFIX_ID, *engine.tokenize(PREFIX + TYPED[:i]), FIM_SUFFIX_ID, *suffix, FIM_MIDDLE_ID]
        for i in range(len(TYPED) + 1)
    ]


def _answer(
    engine: LlamaCppEngine, prompt: list[int], *, cache: bool = True
) -> tuple[list[int], DecodeStats]:
    """Greedy token ids; ``cache=False`` is a cold run: the slot's cache is cleared first."""
    stream = engine.stream(
        DecodeRequest(
            tokens=prompt,
            max_tokens=8,
            sampler=SamplerConfig(temperature=0.0),
            stop_ids=FIM_STOPS,
            cache=cache,
            speculative=False,
        )
    )
    return [t for t in stream if isinstance(t, int)], stream.stats


def _type(engine: LlamaCppEngine, trace: list[list[int]]) -> list[tuple[list[int], DecodeStats]]:
    """Each keystroke served with reuse, each from the cache the one before left (the first cold)."""
    return [_answer(engine, p, cache=i > 0) for i, p in enumerate(trace)]


def test_typing_with_default_reuse_answers_exactly_as_a_cold_run(model: Path) -> None:
    engine = _engine(model)
    try:
        assert engine.profile.kv_shift_reuse is False  # the default
        trace = _trace(engine)
        warm = _type(engine, trace)
        # Cold runs only after the whole trace: none of them refreshes the cache the trace uses.
        cold = [_answer(engine, p, cache=False)[0] for p in trace]
        assert len({tuple(ids) for ids in cold}) > len(trace) // 2  # the answers follow the prefix
        differ = [i for i, ((ids, _), cold_ids) in enumerate(zip(warm, cold, strict=True)) if ids != cold_ids]
        assert not differ, f"keystrokes {differ} of {len(trace)} answered unlike a cold run"
        # Reuse did happen: every keystroke kept its prefix up to the cursor...
        n_suffix = len(engine.tokenize(SUFFIX))
        for prompt, (_, stats) in zip(trace[1:], warm[1:], strict=True):
            assert stats.n_reused >= len(prompt) - n_suffix - 4
            assert stats.n_prompt_evaluated >= n_suffix  # ...and evaluated the suffix again
    finally:
        engine.close()


def test_opt_in_shifted_reuse_evaluates_only_the_typed_tokens(model: Path) -> None:
    evaluated: dict[bool, int] = {}
    for shift in (False, True):
        engine = _engine(model, kv_shift_reuse=shift)
        try:
            trace = _trace(engine)
            _answer(engine, trace[0], cache=False)
            before = engine.counters.evaluated_tokens
            served = [_answer(engine, p) for p in trace[1:]]
            evaluated[shift] = engine.counters.evaluated_tokens - before
            generated = sum(len(ids) for ids, _ in served)
            if shift:
                # The shifted suffix is served from the cache: a keystroke's one or two new tokens
                # and <|fim_middle|> go through the model, plus the generated tokens.
                assert all(stats.n_prompt_evaluated <= 3 for _, stats in served)
                assert evaluated[shift] <= 3 * len(served) + generated
        finally:
            engine.close()
    assert evaluated[True] * 5 < evaluated[False]


def test_a_keystroke_after_an_early_stop_takes_that_slot_not_a_cold_one(model: Path) -> None:
    """An editor stops reading an answer early (an ending rule fired) and sends the next keystroke
    at once: the scheduler must end the old sequence before choosing a slot, or the keystroke
    finds the slot busy and evaluates its whole prompt in the other, empty one."""
    engine = _engine(model, n_parallel=2)
    try:
        trace = _trace(engine)
        _answer(engine, trace[0], cache=False)
        for prompt in trace[1:6]:
            stream = engine.stream(
                DecodeRequest(tokens=prompt, max_tokens=200, sampler=SamplerConfig(temperature=0.0))
            )
            next(stream)  # the first token, then the client stops reading: the sequence is live
            stream.close()
            _, stats = _answer(engine, prompt)  # the same prompt again: all of it is cached there
            assert stats.n_prompt_evaluated <= 1 < len(prompt), stats
    finally:
        engine.close()


def test_a_fim_models_healing_index_is_built_with_the_model(model: Path) -> None:
    """The first healed keystroke must not pay for indexing the vocabulary (about 0.5 s on
    Qwen2.5-Coder's 151k tokens): the engine builds the index when it loads a FIM model."""
    from cgstudio.engine.llamacpp.healing import built_index

    engine = _engine(model)
    try:
        assert built_index(engine._model).n_vocab > 0  # raises when no index was built
    finally:
        engine.close()
