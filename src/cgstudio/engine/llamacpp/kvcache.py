"""KV-cache reuse policy: which cached tokens a new prompt can keep. Pure: no llama.cpp here.

Each slot (one llama.cpp sequence) remembers the tokens its KV cache holds after a request
ends, the previous prompt followed by its answer. For a new prompt :func:`plan_reuse` decides:

* the common prefix: cached positions ``[0, common)`` are kept as they are. This is exact: under
  causal attention those cells depend only on the tokens the new prompt starts with, so the
  answer is a cold run's (up to llama.cpp rounding other batch shapes differently). It is all
  that is reused unless shifting is asked for;
* only with ``shift=True`` (the load setting ``kv_shift_reuse``, off by default), ``reuse_min`` >
  0 and a cache that can shift, a shifted chunk: the longest run at the end of the old prompt,
  before its final token, that is also at the end of the new prompt, before its final token. Its
  cells move from ``old_start`` to ``new_start``, as llama.cpp's ``--cache-reuse`` does. For FIM
  this is the FIM suffix token then ``{suffix}`` after an edit at the cursor. It is an
  approximation: in PSM order the suffix attends to the prefix, so its cells still hold what was
  computed under the old prefix, and answers can differ from a cold run's;
* the gap ``[common, new_start)`` to evaluate in front of the shifted chunk, and the tail the
  scheduler evaluates in its batches (always at least the final prompt token: it needs logits).

:func:`choose_slot` picks the free slot whose cache shares the longest prefix with the prompt,
unless that prefix is trivial (a few marker tokens): then an empty slot first, so that another
file's cache survives a switch (as llama-server's slot similarity does).
The scheduler applies a plan with ``llama_memory_*`` calls and falls back to :func:`cold_plan`
when llama.cpp refuses an edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Slot:
    """One llama.cpp sequence and the tokens its KV cache holds, by position."""

    seq_id: int
    tokens: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: float = 0.0

    def put(self, pos: int, tok: int) -> None:
        """Record ``tok`` at ``pos``; unknown positions before it read -1."""
        if pos < len(self.tokens):
            self.tokens[pos] = tok
        else:
            self.tokens.extend([-1] * (pos - len(self.tokens)))
            self.tokens.append(tok)


@dataclass(frozen=True)
class ShiftedChunk:
    """Cached positions ``[old_start, old_start + length)`` reused at ``[new_start, new_start + length)``."""

    old_start: int
    new_start: int
    length: int

    @property
    def old_end(self) -> int:
        return self.old_start + self.length

    @property
    def new_end(self) -> int:
        return self.new_start + self.length

    @property
    def delta(self) -> int:
        """How far the chunk's positions move (``llama_memory_seq_add``'s delta)."""
        return self.new_start - self.old_start


@dataclass(frozen=True)
class ReusePlan:
    n_prompt: int
    common: int  # cached prefix kept in place
    shift: ShiftedChunk | None = None

    @property
    def gap(self) -> range:
        """Prompt positions evaluated ahead of the shifted chunk, before the request joins a batch."""
        return range(self.common, self.shift.new_start) if self.shift else range(0)

    @property
    def tail(self) -> range:
        """Prompt positions left for the scheduler's batches."""
        return range(self.n_prompt - 1, self.n_prompt) if self.shift else range(self.common, self.n_prompt)

    @property
    def reused(self) -> int:
        """Prompt tokens served from the cache."""
        return self.common + (self.shift.length if self.shift else 0)


def cold_plan(n_prompt: int) -> ReusePlan:
    """Nothing reused: the whole prompt is evaluated."""
    return ReusePlan(n_prompt, 0)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def old_prompt_len(cache: Sequence[int], last: int) -> int:
    """Where the cached prompt ended: after the last occurrence of the new prompt's final token.

    The cache also holds the previous answer; its prompt ended with the same final token
    (the FIM middle token for FIM). 0 when the token is not cached.
    """
    for i in range(len(cache) - 1, -1, -1):
        if cache[i] == last:
            return i + 1
    return 0


def plan_reuse(
    cache: Sequence[int],
    prompt: Sequence[int],
    *,
    reuse_min: int,
    can_shift: bool,
    shift: bool = False,
) -> ReusePlan:
    """What of ``cache`` (a slot's tokens) a non-empty ``prompt`` keeps.

    The prefix is kept up to, not including, the final prompt token (its logits are needed). A
    shifted chunk (approximate, see the module docstring) is planned only when ``shift`` and
    ``can_shift`` hold, ``reuse_min`` > 0 and it is at least ``reuse_min`` tokens long; it never
    overlaps the common prefix.
    """
    n = len(prompt)
    common = min(common_prefix(cache, prompt), n - 1)
    if not (shift and can_shift and reuse_min > 0):
        return ReusePlan(n, common)
    # Longest common suffix of the two prompts, not counting the final token.
    old_end = min(len(cache), old_prompt_len(cache, prompt[-1])) - 1
    k = 0
    while k < old_end - common and k < n - 1 - common and cache[old_end - 1 - k] == prompt[n - 2 - k]:
        k += 1
    if k < reuse_min:
        return ReusePlan(n, common)
    return ReusePlan(n, common, ShiftedChunk(old_start=old_end - k, new_start=n - 1 - k, length=k))


# A shared prefix shorter than this (and than half the prompt) is not worth a slot's cache: the
# BOS and FIM marker every FIM prompt starts with would otherwise send a new file into the slot
# of the file the user just left, and switching back would evaluate that file again.
MIN_SHARED = 16


def choose_slot(free: Sequence[Slot], prompt: Sequence[int]) -> Slot:
    """The free slot sharing the longest useful prefix with ``prompt`` (at least ``MIN_SHARED``
    tokens or half the prompt). With none: an empty slot, else the one sharing the most (a chat
    goes where the last chat was, not over an editor's cache), then the least recently used."""

    def key(s: Slot) -> tuple[int, bool, int, float]:
        n = common_prefix(s.tokens, prompt)
        useful = n if n >= MIN_SHARED or 2 * n >= len(prompt) > 0 else 0
        return (useful, not s.tokens, n, -s.last_used)

    return max(free, key=key)
