"""One sequence's native llama.cpp sampler chain: no per-token Python work over the logits.

Order: the grammar (when the request has one) first, so every later sampler chooses among the
tokens it allows; then repetition penalties; then greedy, or top-k, top-p, min-p, temperature
and a seeded draw. The prompt is shown to the penalties only: the grammar constrains the reply,
and llama.cpp aborts the process when a grammar accepts a token it does not allow.
"""

from __future__ import annotations

import random
from typing import Any

import llama_cpp as lc

from cgstudio.core.engine import SamplerConfig
from cgstudio.core.errors import InvalidInputError
from cgstudio.engine.llamacpp.handle import llama_log_tail

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


class SamplerChain:
    def __init__(self, cfg: SamplerConfig, vocab: Any, grammar: str | None = None) -> None:
        n_vocab = lc.llama_vocab_n_tokens(vocab)
        first = grammar_sampler(vocab, grammar) if grammar else None  # raises before anything is owned
        params = lc.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = lc.llama_sampler_chain_init(params)
        if first is not None:
            lc.llama_sampler_chain_add(chain, first)
        self.penalties = None
        if cfg.repeat_penalty != 1.0 and cfg.repeat_last_n > 0:
            self.penalties = lc.llama_sampler_init_penalties(
                n_vocab, cfg.repeat_last_n, cfg.repeat_penalty, 0.0, 0.0
            )
            lc.llama_sampler_chain_add(chain, self.penalties)
        if cfg.temperature <= 0.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
        else:
            if cfg.top_k > 0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(cfg.top_k))
            if cfg.top_p < 1.0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(cfg.top_p, 1))
            if cfg.min_p > 0.0:
                lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(cfg.min_p, 1))
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(cfg.temperature))
            seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**32 - 1)
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed))
        self.chain = chain

    def accept(self, tokens: list[int]) -> None:
        """Show prompt tokens to the repetition penalties (the chain owns that sampler)."""
        if self.penalties is None:
            return
        for t in tokens:
            lc.llama_sampler_accept(self.penalties, t)

    def sample(self, ctx: object, idx: int) -> int:
        """Sample from row ``idx`` of the last decode; the whole chain (grammar too) accepts it."""
        return int(lc.llama_sampler_sample(self.chain, ctx, idx))

    def free(self) -> None:
        if self.chain:
            lc.llama_sampler_free(self.chain)
            self.chain = None
            self.penalties = None
