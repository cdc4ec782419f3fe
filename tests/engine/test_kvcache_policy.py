"""The KV-reuse policy (``engine.llamacpp.kvcache``) on token lists: no model, no llama.cpp."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from cgstudio.engine.llamacpp import kvcache
from cgstudio.engine.llamacpp.kvcache import (
    ReusePlan,
    ShiftedChunk,
    Slot,
    choose_slot,
    cold_plan,
    common_prefix,
    old_prompt_len,
    plan_reuse,
)

PRE, SUF, MID = 1, 2, 3  # stand-ins for <|fim_prefix|>, <|fim_suffix|>, <|fim_middle|>
PREFIX = list(range(100, 140))  # 40 tokens before the cursor
SUFFIX = list(range(200, 250))  # 50 tokens after it
ANSWER = [300, 301, 302]


def fim(prefix: list[int], suffix: list[int]) -> list[int]:
    return [PRE, *prefix, SUF, *suffix, MID]


def applied(cache: list[int], prompt: list[int], plan: ReusePlan) -> list[int]:
    """The prompt as the cache holds it once the plan ran: kept, gap, shifted chunk, tail."""
    out = cache[: plan.common] + [prompt[p] for p in plan.gap]
    if plan.shift is not None:
        out += cache[plan.shift.old_start : plan.shift.old_end]
    return out + [prompt[p] for p in plan.tail]


# -- prefix reuse -------------------------------------------------------------------------------


def test_empty_cache_is_a_cold_plan() -> None:
    prompt = [5, 6, 7]
    plan = plan_reuse([], prompt, reuse_min=4, can_shift=True)
    assert plan == cold_plan(3) == ReusePlan(3, 0)
    assert list(plan.tail) == [0, 1, 2] and not plan.gap and plan.reused == 0


def test_common_prefix_is_kept_and_the_rest_evaluated() -> None:
    cache = [10, 11, 12, 13, 14, 15, *ANSWER]
    prompt = [10, 11, 12, 99, 98]
    plan = plan_reuse(cache, prompt, reuse_min=0, can_shift=True)
    assert plan == ReusePlan(5, 3)
    assert list(plan.tail) == [3, 4] and plan.reused == 3
    assert applied(cache, prompt, plan) == prompt


def test_same_prompt_again_still_evaluates_its_last_token() -> None:
    prompt = [10, 11, 12, 13]
    plan = plan_reuse(prompt + ANSWER, prompt, reuse_min=0, can_shift=True)
    assert plan.common == 3 and list(plan.tail) == [3]  # logits are needed for the first new token


def test_a_prompt_continuing_the_answer_reuses_the_answer_too() -> None:
    cache = [10, 11, MID, *ANSWER]
    prompt = [*cache, 7, MID]
    plan = plan_reuse(cache, prompt, reuse_min=4, can_shift=True)
    assert plan == ReusePlan(len(prompt), len(cache))


def test_common_prefix_and_old_prompt_len() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2]) == 2
    assert old_prompt_len([PRE, 5, MID, 7, 8], MID) == 3
    assert old_prompt_len([PRE, 5, 6], MID) == 0
    assert old_prompt_len([MID, 5, MID, 9], MID) == 3  # the last occurrence


# -- the shifted chunk (FIM: the suffix reappears after an edit at the cursor) -------------------


def test_typing_at_the_cursor_shifts_the_suffix_and_evaluates_only_the_new_tokens() -> None:
    cache = fim(PREFIX, SUFFIX) + ANSWER
    typed = [500, 501]
    prompt = fim(PREFIX + typed, SUFFIX)
    plan = plan_reuse(cache, prompt, reuse_min=32, can_shift=True, shift=True)
    common = 1 + len(PREFIX)
    chunk = ShiftedChunk(old_start=common, new_start=common + 2, length=1 + len(SUFFIX))
    assert plan == ReusePlan(len(prompt), common, chunk)
    assert chunk.old_end == common + 51 and chunk.new_end == len(prompt) - 1 and chunk.delta == 2
    assert list(plan.gap) == [common, common + 1]  # the typed tokens
    assert list(plan.tail) == [len(prompt) - 1]  # <|fim_middle|>
    assert plan.reused == len(prompt) - 3
    assert cache[chunk.old_start : chunk.old_end] == prompt[chunk.new_start : chunk.new_end]
    assert applied(cache, prompt, plan) == prompt


def test_deleting_at_the_cursor_shifts_the_suffix_back_with_no_gap() -> None:
    cache = fim(PREFIX, SUFFIX) + ANSWER
    prompt = fim(PREFIX[:-1], SUFFIX)
    plan = plan_reuse(cache, prompt, reuse_min=32, can_shift=True, shift=True)
    assert plan.common == len(PREFIX)
    assert plan.shift == ShiftedChunk(old_start=1 + len(PREFIX), new_start=len(PREFIX), length=51)
    assert plan.shift.delta == -1 and not plan.gap
    assert applied(cache, prompt, plan) == prompt


def test_the_shifted_chunk_never_overlaps_the_common_prefix() -> None:
    # Walking back from the end, the old prompt matches the new one for 4 tokens (8, 7, 7, 7), but
    # three of them are the common prefix: only the 8 is a chunk to shift.
    cache = [PRE, 7, 7, 7, 8, MID, *ANSWER]
    prompt = [PRE, 7, 7, 7, 9, 7, 7, 7, 8, MID]
    plan = plan_reuse(cache, prompt, reuse_min=1, can_shift=True, shift=True)
    assert plan == ReusePlan(10, 4, ShiftedChunk(old_start=4, new_start=8, length=1))
    assert list(plan.gap) == [4, 5, 6, 7]
    assert applied(cache, prompt, plan) == prompt
    assert plan_reuse(cache, prompt, reuse_min=2, can_shift=True, shift=True).shift is None


@pytest.mark.parametrize(("reuse_min", "shifted"), [(0, False), (1, True), (51, True), (52, False)])
def test_reuse_min_is_the_shortest_chunk_worth_shifting(reuse_min: int, shifted: bool) -> None:
    cache = fim(PREFIX, SUFFIX) + ANSWER  # the reusable chunk is <|fim_suffix|> + 50 tokens = 51
    prompt = fim([*PREFIX, 500], SUFFIX)
    plan = plan_reuse(cache, prompt, reuse_min=reuse_min, can_shift=True, shift=True)
    assert (plan.shift is not None) is shifted
    assert plan.common == 1 + len(PREFIX)
    if not shifted:  # reuse_min 0 turns shifting off: prefix reuse only
        assert list(plan.tail) == list(range(plan.common, len(prompt)))
    assert applied(cache, prompt, plan) == prompt


def test_no_shift_when_the_cache_cannot_shift() -> None:
    cache = fim(PREFIX, SUFFIX) + ANSWER
    prompt = fim([*PREFIX, 500], SUFFIX)
    plan = plan_reuse(cache, prompt, reuse_min=8, can_shift=False, shift=True)
    assert plan == ReusePlan(len(prompt), 1 + len(PREFIX))
    assert plan.reused == 1 + len(PREFIX) and len(plan.tail) == len(prompt) - plan.common


def test_shifted_reuse_is_opt_in_and_the_default_reuses_the_exact_prefix_only() -> None:
    cache = fim(PREFIX, SUFFIX) + ANSWER
    prompt = fim([*PREFIX, 500], SUFFIX)
    on = plan_reuse(cache, prompt, reuse_min=8, can_shift=True, shift=True)
    off = plan_reuse(cache, prompt, reuse_min=8, can_shift=True, shift=False)
    assert on.shift is not None and off.shift is None and off.common == on.common
    # The suffix's cells were computed under the old prefix: by default it is evaluated again.
    default = plan_reuse(cache, prompt, reuse_min=8, can_shift=True)
    assert default == off == ReusePlan(len(prompt), 1 + len(PREFIX))
    assert list(default.tail) == list(range(1 + len(PREFIX), len(prompt)))
    assert not hasattr(kvcache, "SHIFT_REUSE")  # one switch: the load setting kv_shift_reuse


def test_no_shift_without_the_final_token_in_the_cache() -> None:
    cache = [PRE, *PREFIX, SUF, *SUFFIX]  # e.g. cancelled before <|fim_middle|> was cached
    prompt = fim([*PREFIX, 500], SUFFIX)
    assert plan_reuse(cache, prompt, reuse_min=1, can_shift=True, shift=True).shift is None


def test_a_new_suffix_is_not_reused() -> None:
    cache = fim(PREFIX, SUFFIX) + ANSWER
    prompt = fim([*PREFIX, 500], [900, *SUFFIX[1:-1], 901])  # the suffix changed at its end
    plan = plan_reuse(cache, prompt, reuse_min=4, can_shift=True, shift=True)
    assert plan.shift is None and plan.common == 1 + len(PREFIX)


def test_random_edits_always_rebuild_the_new_prompt() -> None:
    rng = random.Random(13)
    for _ in range(500):
        vocab = rng.randint(4, 12)  # a small vocabulary: many accidental matches

        def toks(n: int, rng: random.Random = rng, vocab: int = vocab) -> list[int]:
            return [rng.randrange(10, 10 + vocab) for _ in range(n)]

        old = fim(toks(rng.randint(0, 12)), toks(rng.randint(0, 12)))
        cache = old + toks(rng.randint(0, 5))
        new = fim(toks(rng.randint(0, 12)), toks(rng.randint(0, 12)))
        if rng.random() < 0.5:  # an edit of the old prompt rather than a new one
            cut = rng.randint(1, len(old) - 1)
            new = old[:cut] + toks(rng.randint(0, 3)) + old[cut + rng.randint(0, 3) :]
            new = [*new[:-1], MID] if new[-1] != MID else new
        plan = plan_reuse(
            cache, new, reuse_min=rng.randint(0, 4), can_shift=rng.random() < 0.8, shift=rng.random() < 0.8
        )
        assert applied(cache, new, plan) == new
        assert plan.tail and plan.tail.stop == len(new)
        if plan.shift is not None:
            assert plan.common <= plan.shift.old_start and plan.shift.old_end < len(cache)
            assert plan.shift.new_end == len(new) - 1 and plan.reused + len(plan.gap) + 1 == len(new)


# -- slots --------------------------------------------------------------------------------------


def test_choose_slot_takes_the_longest_shared_prefix() -> None:
    prompt = [1, 2, 3, 4, 5]
    a = Slot(0, [1, 2, 9], last_used=1.0)
    b = Slot(1, [1, 2, 3, 4, 8, 8], last_used=5.0)
    c = Slot(2, [], last_used=0.0)
    assert choose_slot([a, b, c], prompt) is b


def test_a_trivial_shared_prefix_does_not_take_another_files_slot() -> None:
    """Two FIM prompts share only their first marker tokens: the new file goes to the least
    recently used (empty) slot, and the other file's cache stays for the switch back."""
    other_file = [2, 67, *range(1000, 1700)]
    new_file = [2, 67, *range(3000, 3600)]
    held = Slot(0, list(other_file), last_used=5.0)
    empty = Slot(1, [], last_used=0.0)
    assert choose_slot([held, empty], new_file) is empty
    assert choose_slot([held, empty], [*other_file[:-3], 7]) is held  # the same file, edited
    assert choose_slot([held, empty], [2, 67, 1000, 9]) is held  # a short prompt, half shared


def test_with_no_empty_slot_a_new_chat_goes_where_the_last_chat_was() -> None:
    """Two slots, both full: an editor's FIM cache (used longest ago) and a finished chat. A new
    chat shares only its template's first tokens with the old one: it takes the chat's slot, and
    the editor's cache stays for the next keystroke."""
    fim = Slot(0, [2, 67, *range(1000, 1400)], last_used=1.0)
    old_chat = Slot(1, [2, 106, 9, 10, *range(5000, 5300)], last_used=2.0)
    new_chat = [2, 106, 9, 10, *range(7000, 7300)]
    assert choose_slot([fim, old_chat], new_chat) is old_chat


def test_choose_slot_breaks_ties_by_least_recent_use() -> None:
    prompt = [1, 2, 3]
    old, recent = Slot(0, [7], last_used=1.0), Slot(1, [8], last_used=9.0)
    assert choose_slot([recent, old], prompt) is old
    same = [Slot(0, [1], last_used=2.0), Slot(1, [1], last_used=2.0)]
    assert choose_slot(same, prompt) is same[0]


def test_slot_put_fills_unknown_positions() -> None:
    s = Slot(0, [5, 6])
    s.put(1, 7)
    s.put(4, 9)
    assert s.tokens == [5, 7, -1, -1, 9]


def test_policy_modules_do_not_touch_llama_cpp() -> None:
    for mod in ("kvcache", "speculative"):
        src = Path(kvcache.__file__).with_name(f"{mod}.py").read_text()
        imported = {
            n.module if isinstance(n, ast.ImportFrom) else a.name
            for n in ast.walk(ast.parse(src))
            if isinstance(n, ast.Import | ast.ImportFrom)
            for a in n.names
        }
        assert not any(str(m).startswith(("llama_cpp", "ctypes", "cgstudio")) for m in imported), (
            mod,
            imported,
        )


def test_shifted_reuse_refuses_a_context_without_a_unified_pool() -> None:
    # fill_gap copies part of a slot's cells to a scratch sequence; with a KV stream per slot
    # llama.cpp would abort the process on that copy, so the cache refuses to be built that way.
    from types import SimpleNamespace

    from cgstudio.engine.llamacpp.reuse import SlotCache

    with pytest.raises(ValueError, match="unified KV pool"):
        SlotCache(SimpleNamespace(unified=False), None, None, 8, 4, shift_reuse=True)  # type: ignore[arg-type]
