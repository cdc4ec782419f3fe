"""The step's prompt rows by priority (engine/llamacpp/batching.py). Pure: no model."""

from __future__ import annotations

from cgstudio.core.engine import Priority
from cgstudio.engine.llamacpp.batching import BACKGROUND_EVERY, prompt_shares, yields

E, N, IDLE = Priority.EDITOR, Priority.NORMAL, Priority.IDLE


def test_an_editor_prompt_takes_every_row_and_chat_prompts_wait() -> None:
    # A chat prompt admitted first, then a FIM keystroke: the keystroke gets the whole batch.
    assert prompt_shares([(N, 300), (E, 40)], rows=16, top=E) == [0, 16]
    # The keystroke is generating (no prompt left) but still active: the chat prompt still waits.
    assert prompt_shares([(N, 300), (E, 0)], rows=15, top=E) == [0, 0]


def test_editor_prompts_share_evenly_and_never_take_more_than_they_need() -> None:
    assert prompt_shares([(E, 100), (E, 100)], rows=16, top=E) == [8, 8]
    assert prompt_shares([(E, 3), (E, 100)], rows=16, top=E) == [3, 13]
    assert prompt_shares([(E, 1), (E, 1), (E, 1)], rows=2, top=E) == [1, 1, 0]


def test_background_prompts_go_in_small_chunks() -> None:
    assert prompt_shares([(N, 1000)], rows=512, top=N, background_chunk=128) == [128]
    assert prompt_shares([(N, 1000), (N, 1000)], rows=512, top=N, background_chunk=128) == [128, 128]
    # Idle work runs only when it is the most urgent there is.
    assert prompt_shares([(IDLE, 50), (N, 50)], rows=512, top=N, background_chunk=128) == [0, 50]
    assert prompt_shares([(IDLE, 50)], rows=512, top=IDLE, background_chunk=128) == [50]


def test_a_generating_chat_advances_one_step_in_four_while_a_keystroke_runs() -> None:
    assert BACKGROUND_EVERY == 4
    # Steps of a chat generating beside a keystroke: it sits out three, advances on the fourth.
    sat_out, advanced = 0, []
    for _ in range(12):
        if yields(N, True, sat_out):
            sat_out += 1
        else:
            sat_out = 0
            advanced.append(True)
    assert len(advanced) == 3
    assert not yields(N, False, 0)  # no keystroke running: every step
    assert not yields(E, True, 0)  # keystrokes never sit out for each other
    assert yields(IDLE, True, 0)
