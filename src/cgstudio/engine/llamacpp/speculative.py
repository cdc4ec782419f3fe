"""Prompt-lookup speculation: n-gram drafts and when to stop drafting. Pure: no llama.cpp here.

A draft is what followed the latest earlier occurrence of the sequence's last few tokens in
its history (prompt plus output). The scheduler verifies drafts in the same batch as the
pending token; sampling at each drafted position keeps the output distribution exactly that of
plain decoding. In "auto" mode a sequence stops drafting when its acceptance rate is too low to
pay for the extra batch rows.

Greedy requests do not draft in "auto" mode. llama.cpp's kernels are not batch-invariant: a
token evaluated in a batch of several rows (the repacked Q4_K gemm, for one) gets logits that
differ in the last bits from the same token evaluated alone (gemv), and the cache keeps the
batched values. Greedy decoding turns a near-tie into a different token, and everything after it
differs: measured on Qwen2.5-Coder-0.5B Q4_K_M, greedy text with drafts left plain decoding's
after 33 tokens on prose and 34 on a copying edit. Only "on" (or the request's ``speculative:
true``) drafts under greedy, with that caveat.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_DRAFT = 8
NGRAM_MAX, NGRAM_MIN = 4, 2
# Drafting is stopped for a sequence once this many drafts were verified with a lower acceptance.
SPEC_PROBE, SPEC_MIN_ACCEPT = 16, 0.35


def draft(history: list[int], limit: int = MAX_DRAFT) -> list[int]:
    """Up to ``limit`` tokens that followed the latest earlier occurrence of the recent n-gram.

    The longest n-gram (``NGRAM_MAX`` down to ``NGRAM_MIN`` tokens) that occurred before wins;
    empty when none did, or when nothing followed it.
    """
    h = history
    for n in range(NGRAM_MAX, NGRAM_MIN - 1, -1):
        if len(h) <= n:
            continue
        key = h[-n:]
        for start in range(len(h) - n - 1, -1, -1):
            if h[start : start + n] == key:
                follow = h[start + n : start + n + limit]
                if follow:
                    return follow
                break
    return []


def starts_speculating(mode: str, requested: bool | None, greedy: bool) -> bool:
    """Whether a new sequence drafts: the request's choice, else the engine's mode.

    "off" never drafts; "on" always; "auto" only when the request samples (``greedy`` False), so
    that greedy output is plain decoding's, token for token (see the module's docstring).
    """
    if requested is not None:
        return requested
    return mode == "on" or (mode == "auto" and not greedy)


def keeps_speculating(mode: str, requested: bool | None, n_drafted: int, n_accepted: int) -> bool:
    """After a verification: False once "auto" has probed enough drafts that were rarely accepted.

    An explicit per-request choice is never overridden.
    """
    return not (
        mode == "auto"
        and requested is None
        and n_drafted >= SPEC_PROBE
        and n_accepted < SPEC_MIN_ACCEPT * n_drafted
    )


def accepted_count(drafted: Sequence[int], sampled: Sequence[int]) -> int:
    """How many drafts the sampled tokens confirmed: the length of their common prefix."""
    k = 0
    while k < len(drafted) and k < len(sampled) and drafted[k] == sampled[k]:
        k += 1
    return k
