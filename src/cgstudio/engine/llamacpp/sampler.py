"""One sequence's native llama.cpp sampler chain: no per-token Python work over the logits.

Order: the grammar (when the request has one) first, so every later sampler chooses among the
tokens it allows; then repetition penalties; then greedy, or top-k, top-p, min-p, temperature
and a seeded draw. The prompt is shown to the penalties only: the grammar constrains the reply,
and llama.cpp aborts the process when a grammar accepts a token it does not allow.
Token healing (``healing``) samples its first token(s) from a masked chain of their own.
"""

from __future__ import annotations

import random
from typing import Any

import llama_cpp as lc

from cgstudio.core.engine import SamplerConfig
from cgstudio.core.errors import InvalidInputError
from cgstudio.engine.llamacpp.handle import llama_log_tail
from cgstudio.engine.llamacpp.healing import Healer

MAX_GRAMMAR_CHARS = 1_000_000


def grammar_sampler(vocab: Any, grammar: str) -> Any:
    """llama.cpp's grammar sampler for GBNF ``grammar`` (root rule "root"), or InvalidInputError
    when it does not parse (llama.cpp returns NULL and logs why)."""
    if "\x00" in grammar or len(grammar) > MAX_GRAMMAR_CHARS:
        raise InvalidInputError(f"the grammar must be text of at most {MAX_GRAMMAR_CHARS:,} characters")
    sampler = lc.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        detail = llama_log_tail() or "no detail"
        raise InvalidInputError(f"the grammar does not parse ({detail}); check its GBNF and its root rule")
    return sampler


def _add_draw(chain: Any, cfg: SamplerConfig, seed: int | None) -> None:
    """Greedy, or top-k, top-p, min-p, temperature and a seeded draw, at the chain's end."""
    if cfg.temperature <= 0.0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        return
    if cfg.top_k > 0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(cfg.top_k))
    if cfg.top_p < 1.0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(cfg.top_p, 1))
    if cfg.min_p > 0.0:
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(cfg.min_p, 1))
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(cfg.temperature))
    seed = seed if seed is not None else random.SystemRandom().randrange(2**32 - 1)
    lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))


def _new_chain() -> Any:
    params = lc.llama_sampler_chain_default_params()
    params.no_perf = True
    return lc.llama_sampler_chain_init(params)


class SamplerChain:
    def __init__(
        self, cfg: SamplerConfig, vocab: Any, grammar: str | None = None, healer: Healer | None = None
    ) -> None:
        """``healer``: token healing; its tokens come from a masked chain of their own."""
        if grammar and healer is not None:
            raise InvalidInputError("a grammar and token healing cannot constrain one reply together")
        n_vocab = lc.llama_vocab_n_tokens(vocab)
        first = grammar_sampler(vocab, grammar) if grammar else None  # raises before anything is owned
        self.cfg = cfg
        self.healer = healer
        self._steps = 0
        chain = _new_chain()
        if first is not None:
            lc.llama_sampler_chain_add(chain, first)
        self.penalties = None
        if cfg.repeat_penalty != 1.0 and cfg.repeat_last_n > 0:
            self.penalties = lc.llama_sampler_init_penalties(
                n_vocab, cfg.repeat_last_n, cfg.repeat_penalty, 0.0, 0.0
            )
            lc.llama_sampler_chain_add(chain, self.penalties)
        _add_draw(chain, cfg, cfg.seed)
        self.chain = chain

    def accept(self, tokens: list[int]) -> None:
        """Show prompt tokens to the repetition penalties (the chain owns that sampler)."""
        if self.penalties is None:
            return
        for t in tokens:
            lc.llama_sampler_accept(self.penalties, t)

    def sample(self, ctx: object, idx: int) -> int:
        """Sample from row ``idx`` of the last decode; the whole chain (grammar too) accepts it.

        While token healing is owed text, the token comes from a chain of its own: the healer's
        mask, then the same draw (seeded with seed + step); the main chain then accepts it."""
        if self.healer is None or not self.healer.rest:
            return int(lc.llama_sampler_sample(self.chain, ctx, idx))
        step = _new_chain()
        try:
            lc.llama_sampler_chain_add(step, self.healer.mask())
            seed = None if self.cfg.seed is None else (self.cfg.seed + self._steps) & 0xFFFFFFFF
            _add_draw(step, self.cfg, seed)
            tok = int(lc.llama_sampler_sample(step, ctx, idx))
        finally:
            lc.llama_sampler_free(step)
        self._steps += 1
        lc.llama_sampler_accept(self.chain, tok)
        self.healer.advance(tok)
        return tok

    def free(self) -> None:
        if self.chain:
            lc.llama_sampler_free(self.chain)
            self.chain = None
            self.penalties = None
