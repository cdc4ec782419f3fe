"""The engine contract. An engine tokenizes, knows its vocabulary and streams token ids.

Everything above it (prompt formats, guards, metrics, stop strings) lives in the pipeline,
so the CLI, the server, eval and bench share one behaviour. ``FakeEngine`` in
``cgstudio.engine.fake`` scripts an engine for unit tests.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum

from cgstudio.core.errors import InvalidInputError


class TokenKind(StrEnum):
    NORMAL = "normal"
    CONTROL = "control"
    USER_DEFINED = "user_defined"
    BYTE = "byte"
    UNKNOWN = "unknown"
    UNUSED = "unused"


def is_markup(text: str) -> bool:
    """Whether special-token text looks like markup (``<...>``, ``[...]``) a user must not inject.

    USER_DEFINED covers whitespace runs in Gemma's vocabulary: those are ordinary text.
    """
    return (
        len(text) >= 3
        and not any(c.isspace() for c in text)
        and ((text[0] == "<" and text[-1] == ">") or (text[0] == "[" and text[-1] == "]"))
    )


@dataclass(frozen=True)
class ModelInfo:
    """What we know about a loaded model, from its GGUF metadata and vocabulary."""

    path: str
    architecture: str
    name: str
    n_ctx_train: int
    n_layers: int
    n_head: int
    n_head_kv: int
    key_length: int
    value_length: int
    size_bytes: int
    n_params: int
    quantization: str
    chat_template: str | None
    bos_id: int | None
    eos_id: int | None
    eot_id: int | None
    add_bos: bool
    add_space_prefix: bool | None
    n_vocab: int
    # text -> id for every CONTROL and USER_DEFINED token: these may never come from user text.
    special_tokens: dict[str, int] = field(default_factory=dict)
    special_kinds: dict[int, TokenKind] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)

    def protected_tokens(self) -> dict[str, int]:
        """Special-token text -> id for tokens user text may never produce: every CONTROL token
        and markup-looking USER_DEFINED ones. Converters differ in how they type FIM and turn
        tokens, so the typing alone is not trusted."""
        return {
            text: tid
            for text, tid in self.special_tokens.items()
            if self.special_kinds.get(tid) == TokenKind.CONTROL or is_markup(text)
        }

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> int:
        """KV-cache bytes per token of context (F16 cache by default): layers x (K + V) widths."""
        width = self.n_head_kv * (self.key_length + self.value_length)
        return int(self.n_layers * width * bytes_per_element)


@dataclass(frozen=True)
class SamplerConfig:
    temperature: float = 0.2
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    seed: int | None = None


class Priority(IntEnum):
    """Who waits for a sequence; lower values are served first (admission and prompt rows).

    EDITOR: a FIM keystroke, the user is waiting with the cursor still. NORMAL: chat and other
    completions. IDLE: work nobody asked for yet (a speculative next completion); engines run it
    only when nothing else is active and drop it when real work arrives."""

    EDITOR = 0
    NORMAL = 1
    IDLE = 2


@dataclass
class DecodeRequest:
    """One sequence to decode. ``stop_ids`` end it (the stop token is not yielded)."""

    tokens: list[int]
    max_tokens: int
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    stop_ids: frozenset[int] = frozenset()
    cancel: threading.Event | None = None
    # Reuse cached KV chunks of >= this many tokens by shifting (None = engine default, 0 = prefix only).
    reuse_min: int | None = None
    # Prompt-lookup speculation: None = engine default ("auto": sampled requests only, while drafts
    # are accepted).
    speculative: bool | None = None
    cache: bool = True  # False: evaluate the whole prompt, reusing nothing
    # A GBNF grammar (root rule "root") every sampled token must fit; None: unconstrained. Engines
    # that cannot constrain refuse it (UnsupportedModeError) rather than ignore it.
    grammar: str | None = None
    # Token healing: the reply's first token must start with this text (engines that can, say so
    # with ``Engine.forces_start``; "" = unconstrained).
    starts_with: str = ""
    # Choices: n sequences decoded from one evaluation of ``tokens`` (``Engine.stream_choices``),
    # each sampled on its own (choice i's seed is ``seed + i``, or its own random seed).
    n: int = 1
    priority: Priority = Priority.NORMAL
    # The prompt phase's budget in seconds, from when the engine takes the request up (llama.cpp's
    # ``t_max_prompt_ms``); past it the request ends before generating (finish "time_limit").
    max_prompt_s: float | None = None

    def for_choice(self, index: int) -> DecodeRequest:
        """Choice ``index``'s own request: one sequence, with its own sampler seed."""
        seed = self.sampler.seed
        sampler = self.sampler if seed is None else replace(self.sampler, seed=(seed + index) & 0xFFFFFFFF)
        return replace(self, n=1, sampler=sampler)


@dataclass
class DecodeStats:
    """Filled in by the engine while a stream runs. Times are seconds (perf_counter)."""

    n_prompt: int = 0
    n_prompt_evaluated: int = 0  # prompt tokens actually run through the model (not reused)
    n_reused: int = 0
    n_generated: int = 0
    prompt_eval_s: float = 0.0
    finish: str | None = None  # "stop_token" | "max_tokens" | "context" | "cancelled" | "time_limit"
    stop_token: int | None = None
    n_drafted: int = 0  # speculative tokens proposed
    n_accepted: int = 0  # speculative tokens the model confirmed
    queued_s: float = 0.0  # time waiting for a free sequence slot
    n_shared: int = 0  # prompt tokens this choice took from choice 0's evaluation (KV copied, n > 1)
    prefill_steps: int = 0  # decode steps that carried part of this sequence's prompt
    held_steps: int = 0  # decode steps its prompt waited out for a more urgent sequence (priority)
    yielded_steps: int = 0  # decode steps its generation sat out for an editor keystroke (priority)


Piece = int | bytes
MAX_CHOICES = 16  # choices an engine without its own bound runs as separate requests


def check_choices(n: int, most: int) -> None:
    """Refuse ``n`` choices when the engine decodes at most ``most`` (the pipeline asks for fewer)."""
    if not 1 <= n <= most:
        raise InvalidInputError(f"n={n} choices asked for; this engine decodes 1 to {most} at once")


class TokenStream(Iterator[Piece]):
    """Iterator of generated tokens with live ``stats``. Closing it frees the sequence.

    Local engines yield token ids. A remote engine whose upstream sends text yields that text
    as ``bytes``, one item per upstream token event; the pipeline treats both alike.
    """

    stats: DecodeStats

    def __init__(self, gen: Iterator[Piece], stats: DecodeStats) -> None:
        self._gen = gen
        self.stats = stats

    def __next__(self) -> Piece:
        return next(self._gen)

    def close(self) -> None:
        close = getattr(self._gen, "close", None)
        if close is not None:
            close()


@dataclass
class EngineCounters:
    """Cumulative counters; tests assert on these rather than on timing."""

    evaluated_tokens: int = 0
    generated_tokens: int = 0
    decode_calls: int = 0
    reused_tokens: int = 0
    active_sequences: int = 0
    queued_requests: int = 0


class Engine(ABC):
    info: ModelInfo
    n_ctx: int
    counters: EngineCounters

    @abstractmethod
    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        """Tokenize without adding BOS. ``parse_special`` lets special-token text become tokens."""

    @abstractmethod
    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token; control tokens are empty unless ``special``."""

    @abstractmethod
    def token_kind(self, token: int) -> TokenKind: ...

    @abstractmethod
    def stream(self, request: DecodeRequest) -> TokenStream:
        """Decode ``request``; never exceeds the context (finish 'context')."""

    @property
    def max_choices(self) -> int:
        """The most choices ``stream_choices`` decodes for one request (``DecodeRequest.n``)."""
        return MAX_CHOICES

    @property
    def shares_prompt(self) -> bool:
        """True when ``stream_choices`` evaluates the prompt once for all its choices."""
        return False

    def stream_choices(self, request: DecodeRequest) -> list[TokenStream]:
        """``request.n`` token streams, choice i at index i, all decoding at once.

        This default runs one request per choice (``for_choice``), so the prompt is evaluated n
        times; engines that copy one evaluated prompt to n sequences override it (``shares_prompt``).
        An ``n`` above ``max_choices`` is refused here, before anything is decoded.
        """
        check_choices(request.n, self.max_choices)
        streams: list[TokenStream] = []
        try:
            for i in range(request.n):
                streams.append(self.stream(request.for_choice(i)))
        except BaseException:
            for s in streams:
                s.close()
            raise
        return streams

    @property
    def forces_start(self) -> bool:
        """True when ``stream`` honours ``DecodeRequest.starts_with`` (token healing); others never
        get a healed prompt."""
        return False

    @property
    def exact_token_counts(self) -> bool:
        """False when token counts (context budget, truncation, usage) are estimates, e.g. a remote
        engine with no tokenizer for its model. Prompts then carry a ``token_estimate`` warning."""
        return True

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        return b"".join(self.piece(t, special=special) for t in tokens).decode("utf-8", errors="replace")

    def close(self) -> None:  # noqa: B027 - optional hook
        pass
