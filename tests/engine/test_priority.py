"""Priority at step granularity, the prompt budget and idle work, on a real llama.cpp engine (a tiny
synthetic CodeGemma GGUF). Everything is asserted on per-sequence step counters, not on timing."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from cgstudio.core.engine import DecodeRequest, Priority, SamplerConfig, TokenStream
from cgstudio.core.settings import LoadProfile
from cgstudio.engine.llamacpp import LlamaCppEngine
from cgstudio.testing.synthetic_gguf import write_codegemma_gguf

BATCH = 16
GREEDY = SamplerConfig(temperature=0.0)
CODE = "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n    return total\n"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaCppEngine]:
    path = write_codegemma_gguf(tmp_path_factory.mktemp("prio") / "codegemma-2b.gguf")
    profile = LoadProfile.model_validate({"n_ctx": 1024, "n_parallel": 3, "n_batch": BATCH})
    eng = LlamaCppEngine(path, profile)
    yield eng
    eng.close()


def _tokens(engine: LlamaCppEngine, n: int, salt: str) -> list[int]:
    text = f"# {salt}\n" + CODE * 40
    toks = [2, *engine.tokenize(text)]
    assert len(toks) >= n
    return toks[:n]


def _request(tokens: list[int], priority: Priority, max_tokens: int = 8, **kw: object) -> DecodeRequest:
    fields: dict[str, object] = {"speculative": False, "cache": False, **kw}
    return DecodeRequest(
        tokens=tokens,
        max_tokens=max_tokens,
        sampler=GREEDY,
        priority=priority,
        **fields,  # type: ignore[arg-type]
    )


def _drain(stream: TokenStream) -> list[int]:
    return [t for t in stream if isinstance(t, int)]


def test_a_fim_prompt_is_never_stuck_behind_a_chat_prompt(engine: LlamaCppEngine) -> None:
    chat_tokens, fim_tokens = _tokens(engine, 300, "chat"), _tokens(engine, 40, "fim")
    sched = engine._scheduler
    with sched._cv:  # both queued before the decode thread looks: the order below is the engine's
        chat = engine.stream(_request(chat_tokens, Priority.NORMAL, max_tokens=4))
        fim = engine.stream(_request(fim_tokens, Priority.EDITOR))
    _drain(fim)
    _drain(chat)
    # The keystroke's prompt took the whole batch every step: ceil(40 / 16) steps. Sharing the batch
    # evenly with the chat prompt (the old rule) took 5.
    assert fim.stats.prefill_steps == math.ceil(len(fim_tokens) / BATCH) == 3
    assert fim.stats.held_steps == 0
    # The chat prompt waited while the keystroke was active: its prompt steps and its generated
    # tokens but one (the last token's step ends it) all went by without a chat prompt row.
    assert chat.stats.held_steps == fim.stats.prefill_steps + fim.stats.n_generated - 1
    assert chat.stats.prefill_steps == math.ceil(len(chat_tokens) / BATCH)
    assert chat.stats.n_prompt_evaluated == len(chat_tokens) and chat.stats.finish == "max_tokens"


def test_a_generating_chat_advances_one_step_in_four_while_a_keystroke_runs(engine: LlamaCppEngine) -> None:
    chat = engine.stream(_request(_tokens(engine, 20, "chat-gen"), Priority.NORMAL, max_tokens=200))
    next(chat)  # the chat is generating
    generated_before = chat.stats.n_generated
    fim = engine.stream(_request(_tokens(engine, 40, "fim-gen"), Priority.EDITOR, max_tokens=8))
    _drain(fim)
    fim_steps = fim.stats.prefill_steps + fim.stats.n_generated
    chat.close()
    # The chat sat out three steps of every four the keystroke ran (the step that admitted the
    # keystroke, and the one after its last token, may carry a chat token either way).
    assert fim_steps >= 10
    assert chat.stats.yielded_steps >= (fim_steps - 2) * 3 // 4
    assert chat.stats.n_generated - generated_before <= fim_steps // 4 + 3
    assert fim.stats.yielded_steps == 0 and fim.stats.n_generated == 8


def test_a_queued_fim_request_is_admitted_before_queued_chat(engine: LlamaCppEngine) -> None:
    sched = engine._scheduler
    with sched._cv:
        chats = [engine.stream(_request(_tokens(engine, 60, f"c{i}"), Priority.NORMAL)) for i in range(3)]
        fim = engine.stream(_request(_tokens(engine, 40, "f"), Priority.EDITOR))
        order = [s.req.priority for s in sched._pending]
    assert order == [Priority.EDITOR, Priority.NORMAL, Priority.NORMAL, Priority.NORMAL]
    _drain(fim)
    for c in chats:
        _drain(c)
    # Three slots: the keystroke and two chats started together; the third chat waited for a slot.
    assert fim.stats.queued_s <= min(c.stats.queued_s for c in chats[2:])
    assert fim.stats.held_steps == 0 and fim.stats.prefill_steps == 3


def test_the_prompt_budget_ends_the_request_and_keeps_what_was_evaluated(engine: LlamaCppEngine) -> None:
    tokens = _tokens(engine, 200, "budget")
    stream = engine.stream(_request(tokens, Priority.EDITOR, max_prompt_s=0.0, cache=True))
    assert _drain(stream) == []
    st = stream.stats
    # Checked between steps, after at least one: one batch of the prompt was evaluated.
    assert (st.finish, st.n_prompt_evaluated, st.n_generated) == ("time_limit", BATCH, 0)
    again = engine.stream(_request(tokens, Priority.EDITOR, cache=True))
    _drain(again)
    # The evaluated part stayed in the slot: the next request with the same prompt starts after it.
    assert again.stats.n_reused == st.n_reused + BATCH
    assert again.stats.n_prompt_evaluated == len(tokens) - again.stats.n_reused


def test_idle_work_is_cancelled_by_any_real_request(engine: LlamaCppEngine) -> None:
    idle = engine.stream(_request(_tokens(engine, 40, "idle"), Priority.IDLE, max_tokens=400))
    next(idle)  # it runs while the engine has nothing else
    real = engine.stream(_request(_tokens(engine, 40, "real"), Priority.NORMAL))
    _drain(idle)
    _drain(real)
    assert idle.stats.finish == "cancelled" and idle.stats.n_generated < 400
    assert real.stats.finish == "max_tokens"


def test_chat_prompts_go_in_smaller_chunks_while_an_editor_is_typing(tmp_path: Path) -> None:
    path = write_codegemma_gguf(tmp_path / "codegemma-2b.gguf")
    profile = LoadProfile.model_validate({"n_ctx": 1024, "n_parallel": 2, "n_batch": 256})
    eng = LlamaCppEngine(path, profile)
    try:
        chat_tokens = _tokens(eng, 200, "chunks")
        before = eng.stream(_request(chat_tokens, Priority.NORMAL, max_tokens=2))
        _drain(before)
        # No editor yet: a free slot keeps chat prompts to 128-token chunks (BACKGROUND_CHUNK).
        assert before.stats.prefill_steps == math.ceil(200 / 128)
        _drain(eng.stream(_request(_tokens(eng, 20, "key"), Priority.EDITOR, max_tokens=2)))
        after = eng.stream(_request(_tokens(eng, 200, "chunks-2"), Priority.NORMAL, max_tokens=2))
        _drain(after)
        # An editor request ran a moment ago: its next keystroke would wait for 32 tokens at most.
        assert after.stats.prefill_steps == math.ceil(200 / 32)
    finally:
        eng.close()
