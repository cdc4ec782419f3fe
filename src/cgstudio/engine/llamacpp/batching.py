"""Which prompts a decode step advances, and by how many tokens. Pure: no llama.cpp here.

Each step the scheduler first gives every generating sequence its pending token (plus drafts),
then hands the rows left to prompts by :func:`prompt_shares`. Priority (``core.engine.Priority``)
decides at step granularity:

* prompt rows go to the most urgent class that has work in the engine. While an EDITOR sequence
  (a FIM keystroke) is active, evaluating its prompt or generating, NORMAL and IDLE prompts wait:
  on a CPU one chunk of a chat prompt costs as much as many single-token steps, and the editor's
  next token would wait for it. Chat sequences that are generating keep their one token a step;
* within the class the rows are shared evenly, in the order the sequences were admitted;
* a prompt below EDITOR advances at most ``background_chunk`` tokens a step, so an editor request
  that arrives in the middle of a step waits for at most that much of a chat prompt. The scheduler
  asks for this while a slot is free, or while IDLE work runs (it is closed when a request comes):
  otherwise, with every slot busy, no request can join the next step. While an editor has sent a
  request within ``EDITOR_RECENT_S``, the chunk is ``EDITOR_NEAR_CHUNK``: the editor's next
  keystroke is likely, and it then waits for a quarter of the chunk;
* a generating sequence below EDITOR gets its token only every ``BACKGROUND_EVERY`` steps while an
  EDITOR sequence is evaluating its prompt or generating (:func:`yields`): each chat row makes a
  step of the keystroke's slower (on 2 CPU cores a 2-row step costs about 1.3 one-row steps),
  and the keystroke is short. The chat slows down for the keystroke's lifetime and never stops.
"""

from __future__ import annotations

from collections.abc import Sequence

from cgstudio.core.engine import Priority

# Prompt tokens a NORMAL or IDLE prompt advances per step: small enough that an editor request
# arriving mid-step waits little, large enough that llama.cpp's matrix kernels stay efficient.
BACKGROUND_CHUNK = 128
# Measured with Qwen2.5-Coder-0.5B Q4_K_M on 2 cores (llama.cpp 0c1e570): 128-token chunks
# evaluate 199 tok/s (643 ms a chunk), 32-token chunks 172 tok/s (186 ms a chunk).
EDITOR_NEAR_CHUNK = 32
EDITOR_RECENT_S = 10.0  # an editor request this recent makes the next one likely
BACKGROUND_EVERY = 4  # while a keystroke runs, a chat's generation advances one step in this many


def yields(priority: Priority, editor_running: bool, sat_out: int) -> bool:
    """Whether a generating sequence of ``priority`` sits this step out: only below EDITOR, only
    while an editor sequence runs, and never ``BACKGROUND_EVERY`` steps in a row (``sat_out``: the
    steps it has sat out since it last advanced)."""
    return editor_running and priority > Priority.EDITOR and sat_out < BACKGROUND_EVERY - 1


def prompt_shares(
    todo: Sequence[tuple[Priority, int]],
    rows: int,
    top: Priority,
    background_chunk: int = BACKGROUND_CHUNK,
) -> list[int]:
    """Prompt tokens each sequence evaluates this step.

    ``todo`` holds (priority, prompt tokens left) per active sequence, in admission order; ``rows``
    is what the batch has left; ``top`` is the most urgent priority among all active sequences
    (generating ones too). A sequence gets 0 unless its class is ``top``.
    """
    shares = [0] * len(todo)
    waiting = [i for i, (prio, left) in enumerate(todo) if left > 0 and prio == top]
    cap = rows if top == Priority.EDITOR else min(rows, max(1, background_chunk))
    for k, i in enumerate(waiting):
        if rows <= 0:
            break
        even = max(1, rows // (len(waiting) - k))
        shares[i] = min(todo[i][1], cap, even)
        rows -= shares[i]
    return shares
