"""``OpenAIEngine``: any OpenAI-compatible server (vLLM, llama_cpp.server, ...) behind the Engine contract.

cgstudio stays the front: prompts are built here as token ids (formats, FIM, guards' budget),
sent to ``POST /v1/completions`` (as ids to vLLM, as checked text to text-only servers) and the
streamed text comes back as ``bytes`` pieces into the one pipeline (stops, guards, metrics).

Lifecycle and failures:
    * The upstream is discovered lazily (``GET /v1/models``: model id, dialect, vLLM's
      max_model_len) and again after it vanished; while it is down every request fails with
      ``UpstreamError`` (HTTP 503) saying so, and the server keeps serving.
    * HTTP goes through ``UpstreamClient`` (client.py: its timeouts, retries and error mapping).
      A completion is retried only until the upstream's answer starts; after that nothing is
      retried: an error ends the stream.
    * Cancellation (``DecodeRequest.cancel``) is checked between streamed events; stopping early
      for any reason (cancel, stop string, guard, disconnect) closes the upstream HTTP stream,
      which aborts the upstream request. ``counters.aborted_streams`` counts those.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from cgstudio.core.engine import (
    DecodeRequest,
    DecodeStats,
    Engine,
    EngineCounters,
    ModelInfo,
    Piece,
    TokenKind,
    TokenStream,
)
from cgstudio.core.errors import (
    CGStudioError,
    ContextOverflowError,
    InvalidInputError,
    SettingsError,
    UnsupportedModeError,
    UpstreamError,
)
from cgstudio.engine.remote.client import UpstreamClient, reason
from cgstudio.engine.remote.config import UpstreamSettings
from cgstudio.engine.remote.dialect import FINISH, Dialect, models_list, parse_event, sse_data
from cgstudio.engine.remote.llamacpp_server import (
    LlamaCppServerDialect,
    TextDialect,
    render_prompt,
    stop_texts,
)
from cgstudio.engine.remote.tokenizer import (
    EstimateTokenizer,
    Tokenizer,
    UpstreamTokenizer,
    family_vocab,
    open_local,
    synthetic_info,
)
from cgstudio.engine.remote.vllm import VLLMDialect, is_vllm, max_model_len
from cgstudio.families import family_from_name

log = logging.getLogger("cgstudio.remote")

DIALECTS: dict[str, type[Dialect]] = {
    "vllm": VLLMDialect,
    "llama_cpp": LlamaCppServerDialect,
    "openai": TextDialect,
}


@dataclass
class RemoteCounters(EngineCounters):
    """EngineCounters plus what happened upstream. Times are perf_counter seconds."""

    upstream_requests: int = 0
    retries: int = 0
    upstream_errors: int = 0
    aborted_streams: int = 0  # upstream streams we closed before they finished
    last_abort_at: float | None = None


@dataclass(frozen=True)
class Upstream:
    """What discovery found."""

    model: str
    dialect: Dialect
    max_model_len: int | None
    models: tuple[str, ...]


class OpenAIEngine(Engine):
    """An OpenAI-compatible server as an engine. ``n_ctx`` is capped by vLLM's max_model_len."""

    def __init__(
        self, settings: UpstreamSettings, *, n_ctx: int = 8192, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.n_ctx = n_ctx
        self.counters: RemoteCounters = RemoteCounters()
        self._lock = threading.Lock()
        self._upstream: Upstream | None = None
        self._protected: frozenset[int] | None = None
        self.client = UpstreamClient.for_upstream(
            settings, transport=transport, on_retry=self._count_retry, on_error=self._count_error
        )
        try:
            self.tokenizer = self._open_tokenizer()
        except BaseException:
            self.client.close()
            raise
        info = self.tokenizer.info
        self.info = dataclasses.replace(info, n_ctx_train=info.n_ctx_train or n_ctx)

    # -- discovery ---------------------------------------------------------------------------------
    def discover(self) -> Upstream:
        """The upstream's model and dialect (cached until it vanishes). Raises UpstreamError when down."""
        up = self._upstream
        if up is not None:
            return up
        cards = models_list(self._get("/v1/models"))
        ids = tuple(c["id"] for c in cards)
        if not cards:
            raise UpstreamError(
                f"the upstream at {self.settings.root} serves no model yet; wait until it has loaded one"
            )
        wanted = self.settings.model
        card = cards[0] if wanted is None else next((c for c in cards if c["id"] == wanted), None)
        if card is None:
            raise UpstreamError(
                f"the upstream at {self.settings.root} serves {', '.join(ids)}, not {wanted!r}; fix --model"
            )
        up = Upstream(card["id"], self._dialect(cards), max_model_len(card), ids)
        with self._lock:
            self._upstream = up
            if up.max_model_len and up.max_model_len < self.n_ctx:
                self.n_ctx = up.max_model_len
        log.info("upstream %s: model %s, dialect %s", self.settings.root, up.model, up.dialect.name)
        return up

    def _dialect(self, cards: list[dict[str, Any]]) -> Dialect:
        choice = self.settings.dialect
        if choice == "auto":
            if is_vllm(cards):
                choice = "vllm"
            else:
                try:  # llama_cpp.server has /extras/tokenize; other servers answer 404
                    self.call("/extras/tokenize", {"input": ""})
                    choice = "llama_cpp"
                except CGStudioError:
                    choice = "openai"
        return DIALECTS[choice]()

    def _forget(self) -> None:
        with self._lock:
            self._upstream = None

    # -- tokenizer ---------------------------------------------------------------------------------
    def _open_tokenizer(self) -> Tokenizer:
        s = self.settings
        if s.tokenizer is not None:
            tok = open_local(s.tokenizer, s.family, s.model or s.tokenizer.stem)
            try:
                self.discover()  # only to learn max_model_len early; being down is fine here
            except CGStudioError as exc:
                log.warning("%s", exc.message)
            return tok
        up = self.discover()
        family = s.family or family_from_name(up.model)
        if s.tokenizer_mode != "estimate" and up.dialect.tokenize_path is not None:
            try:
                return UpstreamTokenizer(self.call, up.dialect, up.model, family)
            except CGStudioError as exc:
                if s.tokenizer_mode == "upstream":
                    raise
                log.warning("the upstream cannot tokenize (%s); counting tokens by estimate", exc.message)
        elif s.tokenizer_mode == "upstream":
            raise SettingsError(
                f"the upstream ({up.dialect.name}) has no tokenize endpoint; pass --tokenizer PATH.gguf"
            )
        return EstimateTokenizer(family, up.model)

    @property
    def estimate(self) -> bool:
        """Token counts are estimates (no tokenizer for this model)."""
        return self.tokenizer.estimate

    @property
    def exact_token_counts(self) -> bool:
        return not self.tokenizer.estimate

    def tokenize(self, text: str, *, parse_special: bool = False) -> list[int]:
        return self.tokenizer.tokenize(text, parse_special=parse_special)

    def piece(self, token: int, *, special: bool = False) -> bytes:
        return self.tokenizer.piece(token, special=special)

    def token_kind(self, token: int) -> TokenKind:
        return self.tokenizer.token_kind(token)

    def detokenize(self, tokens: list[int], *, special: bool = False) -> str:
        return self.tokenizer.detokenize(tokens, special=special).decode("utf-8", errors="replace")

    # -- HTTP --------------------------------------------------------------------------------------
    def call(self, path: str, body: dict[str, Any]) -> Any:
        """POST ``body`` to ``path`` (from the server root) and return the JSON answer."""
        return self._json("POST", path, body)

    def _get(self, path: str) -> Any:
        return self._json("GET", path, None)

    def _json(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        try:
            return self.client.json(method, path, body)
        except UpstreamError:
            self._forget()  # down, or the model may have changed: rediscover next time
            raise

    def _count_retry(self) -> None:
        with self._lock:
            self.counters.retries += 1

    def _count_error(self) -> None:
        with self._lock:
            self.counters.upstream_errors += 1

    # -- decoding ----------------------------------------------------------------------------------
    def stream(self, request: DecodeRequest) -> TokenStream:
        tokens = request.tokens
        if not tokens:
            raise InvalidInputError("empty prompt: nothing to decode")
        if request.grammar is not None:
            raise UnsupportedModeError(
                "a remote model cannot be constrained by a grammar (tool_choice 'required' or a named "
                "function); use tool_choice 'auto', or serve the model's GGUF in-process"
            )
        up = self.discover()
        if len(tokens) >= self.n_ctx:
            raise ContextOverflowError(len(tokens), self.n_ctx)
        max_tokens = max(1, min(request.max_tokens, self.n_ctx - len(tokens)))
        texts: list[str] = []
        prompt: list[int] | str = list(tokens)
        if not up.dialect.token_prompts:
            prompt = render_prompt(self.tokenizer, tokens, self._protected_ids())
            texts = stop_texts(self.tokenizer, sorted(request.stop_ids))
        body = up.dialect.completion_body(
            up.model, prompt, max_tokens, request.sampler, sorted(request.stop_ids), texts
        )
        stats = DecodeStats(n_prompt=len(tokens), n_prompt_evaluated=len(tokens))
        return TokenStream(self._events(body, request, stats), stats)

    def _protected_ids(self) -> frozenset[int]:
        if self._protected is None:
            self._protected = frozenset(self.info.protected_tokens().values())
        return self._protected

    def _events(self, body: dict[str, Any], request: DecodeRequest, stats: DecodeStats) -> Iterator[Piece]:
        cancel = request.cancel
        if cancel is not None and cancel.is_set():
            stats.finish = "cancelled"
            return
        with self._lock:
            self.counters.upstream_requests += 1
            self.counters.decode_calls += 1
            self.counters.evaluated_tokens += stats.n_prompt
        try:
            with self.client.stream("/v1/completions", body, cancel=cancel) as response:
                if response is None:  # cancelled while waiting to retry
                    stats.finish = "cancelled"
                    return
                with self._lock:
                    self.counters.active_sequences += 1
                reader = self._read(response, request, stats)
                try:
                    yield from reader
                finally:
                    reader.close()  # now, not at garbage collection: it records an early exit
                    with self._lock:
                        self.counters.active_sequences -= 1
        except UpstreamError:
            self._forget()
            raise
        except httpx.TransportError as exc:  # after the answer started: not retried
            self._count_error()
            self._forget()
            raise self.client.transport_error(exc) from exc

    def _read(
        self, response: httpx.Response, request: DecodeRequest, stats: DecodeStats
    ) -> Generator[bytes, None, None]:
        """The text pieces of one upstream stream; records an abort if we leave before its end."""
        cancel = request.cancel
        done = False
        try:
            for data in sse_data(response.iter_lines()):
                if cancel is not None and cancel.is_set():
                    stats.finish = "cancelled"
                    return
                try:
                    event = parse_event(json.loads(data))
                except ValueError as exc:
                    raise UpstreamError(f"the upstream streamed invalid JSON: {data[:200]!r}") from exc
                if event.text:
                    # prompt_eval_s stays 0: the upstream's prefill time is not known here (the
                    # pipeline measures time to first token as the front sees it).
                    stats.n_generated += 1
                    with self._lock:
                        self.counters.generated_tokens += 1
                    yield event.text.encode("utf-8")
                if event.finish_reason:
                    stats.finish = FINISH.get(event.finish_reason, "max_tokens")
                    if stats.finish == "stop_token":
                        stats.stop_token = self._stop_token(event.stop_reason)
                if event.completion_tokens is not None:
                    stats.n_generated = event.completion_tokens
                if event.prompt_tokens is not None and event.cached_tokens is not None:
                    stats.n_reused = event.cached_tokens
                    stats.n_prompt_evaluated = event.prompt_tokens - event.cached_tokens
            done = True
            if stats.finish is None:
                stats.finish = "max_tokens"
        finally:
            if not done:
                with self._lock:
                    self.counters.aborted_streams += 1
                    self.counters.last_abort_at = time.perf_counter()

    def _stop_token(self, reason: int | str | None) -> int | None:
        if isinstance(reason, int):
            return reason
        if isinstance(reason, str):
            return self.info.special_tokens.get(reason)
        return self.info.eos_id

    def close(self) -> None:
        self.client.close()
        self.tokenizer.close()


def probe_upstream(settings: UpstreamSettings, *, timeout_s: float = 3.0) -> tuple[list[str], str]:
    """A quick health check: (model ids the upstream serves, a one-line status). Never raises."""
    client = UpstreamClient(
        settings.root,
        api_key=settings.api_key,
        connect_timeout_s=timeout_s,
        read_timeout_s=timeout_s,
        retries=0,
    )
    try:
        try:
            response = client.request("GET", "/v1/models")
        except CGStudioError as exc:
            return [], f"not answering: {exc.message}; requests get 503 until it does"
        try:
            ids = [c["id"] for c in models_list(response.json())]
        except (ValueError, CGStudioError) as exc:
            return [], f"not an OpenAI-compatible server? ({reason(exc)})"
        return ids, f"answering, serving {', '.join(ids) or 'no model yet'}"
    finally:
        client.close()


def model_info_for(settings: UpstreamSettings, *, timeout_s: float = 3.0) -> ModelInfo:
    """What the registry lists before the engine loads: the GGUF's info, or the upstream's name and family.

    Never fails for a down upstream: the family then comes from --family (or is 'unknown') and
    the registry reads the real info again once the engine has loaded.
    """
    if settings.tokenizer is not None and settings.tokenizer.suffix == ".gguf":
        # Imported here: it loads llama_cpp, which importing this module must not (start-up time).
        from cgstudio.engine.llamacpp import inspect_model

        return inspect_model(settings.tokenizer)
    ids, _ = probe_upstream(settings, timeout_s=timeout_s)
    name = settings.model or (ids[0] if ids else "remote")
    family = settings.family or family_from_name(name)
    fake = {text: i for i, text in enumerate(family_vocab(family).specials)}
    return synthetic_info(name, family, fake, n_ctx=0)
