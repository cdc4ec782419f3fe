"""Honest metrics, measured where they happen (time.perf_counter)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Timings:
    """Seconds and tokens per second. A rate over too few tokens is ``None``, never invented."""

    time_to_first_token_s: float | None  # LM Studio's "thought for"
    prompt_tokens_per_s: float | None
    generation_tokens_per_s: float | None  # None when fewer than 2 tokens were generated
    total_s: float
    prompt_eval_s: float = 0.0
    prompt_tokens_evaluated: int = 0
    prompt_tokens_reused: int = 0
    queued_s: float = 0.0
    draft_tokens: int = 0  # prompt-lookup speculation: proposed
    draft_tokens_accepted: int = 0  # and confirmed by the model
    context_tokens: int = 0  # context files' tokens in the prompt (repository context, input_extra)
    context_tokens_reused: int = 0  # of which the KV cache already held
    # Who answered: "engine", "typed_ahead" (the rest of the client's ghost text, no engine) or
    # "speculative" (the answer computed ahead, while idle, for accepting the last ghost text).
    source: str = "engine"

    def as_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


def prompt_rate(n_evaluated: int, seconds: float) -> float | None:
    # One token is a latency, not a rate (a cache hit evaluates just the last prompt token).
    if n_evaluated < 2 or seconds <= 0:
        return None
    return n_evaluated / seconds


def generation_rate(
    n_generated: int, first_token_at: float | None, last_token_at: float | None
) -> float | None:
    # Tokens after the first, over the time after the first: the decode rate the user feels.
    # With fewer than 2 tokens there is no interval to measure.
    if n_generated < 2 or first_token_at is None or last_token_at is None:
        return None
    span = last_token_at - first_token_at
    if span <= 0:
        return None
    return (n_generated - 1) / span
