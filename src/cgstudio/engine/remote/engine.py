"""``OpenAIEngine``: any OpenAI-compatible server (vLLM, llama_cpp.server, ...) behind the Engine contract.

cgstudio stays the front: prompts are built here as token ids (formats, FIM, guards' budget),
sent to ``POST /v1/completions`` (as ids to vLLM, as checked text to text-only servers) and the
streamed text comes back as ``bytes`` pieces into the one pipeline (stops, guards, metrics).

Lifecycle and failures:
    * The upstream is discovered lazily (``GET /v1/models``: model id, dialect, vLLM's
      max_model_len) and again after it vanished; while it is down every request fails with
      ``UpstreamError`` (HTTP 503) saying so, and the server keeps serving.
    * Before the first token, connection failures and 502/503/504 are retried ``retries`` times
      (0.25 s, 0.5 s, ...). A read timeout is not retried (the upstream may still be working).
      After the first token nothing is retried: an error ends the stream.
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
    OverloadedError,
    SettingsError,
    UpstreamError,
)
from cgstudio.engine.remote.config import UpstreamSettings
from cgstudio.engine.remote.dialect import FINISH, Dialect, error_detail, models_list, parse_event, sse_data
from cgstudio.engine.remote.llamacpp_server import (
    LlamaCppServerDialect,
    TextDialect,
    render_prompt,
    stop_texts,
)
from cgstudio.engine.remote.tokenizer import EstimateTokenizer, Tokenizer, UpstreamTokenizer, open_local
from cgstudio.engine.remote.vllm import VLLMDialect, is_vllm, max_model_len
from cgstudio.families import family_from_name

log = logging.getLogger("cgstudio.remote")

RETRY_STATUS = frozenset({502, 503, 504})
BACKOFF_S = 0.25
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


class _Retry(Exception):
    def __init__(self, error: CGStudioError) -> None:
        super().__init__(error.message)
        self.error = error


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
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(
                max_connections=settings.max_connections, max_keepalive_connections=settings.max_connections
            ),
            transport=transport,
        )
        try:
            self.tokenizer = self._open_tokenizer()
        except BaseException:
            self._client.close()
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

    def health(self) -> dict[str, Any]:
        """Probe the upstream now: {"ok", "detail", "model", "dialect"}; never raises."""
        try:
            self._forget()
            up = self.discover()
            return {"ok": True, "detail": "answering", "model": up.model, "dialect": up.dialect.name}
        except CGStudioError as exc:
            return {"ok": False, "detail": exc.message, "model": None, "dialect": None}

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
        return self._json(self._send("POST", self.settings.root + path, body))

    def _get(self, path: str) -> Any:
        return self._json(self._send("GET", self.settings.root + path, None))

    def _send(self, method: str, url: str, body: dict[str, Any] | None) -> httpx.Response:
        """One request, retried like a completion before its first token (connect errors, 502-504)."""
        for attempt in range(self.settings.retries + 1):
            if attempt:
                with self._lock:
                    self.counters.retries += 1
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            try:
                response = self._client.request(method, url, json=body)
            except httpx.TransportError as exc:
                self._count_error()
                if attempt < self.settings.retries and isinstance(exc, httpx.ConnectError):
                    continue
                raise self._transport_error(exc) from exc
            if response.status_code == 200:
                return response
            self._count_error()
            if attempt < self.settings.retries and response.status_code in RETRY_STATUS:
                continue
            raise self._status_error(url, response)
        raise AssertionError("unreachable")

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(f"{response.request.url} answered with something other than JSON") from exc

    def _transport_error(self, exc: httpx.TransportError) -> UpstreamError:
        root = self.settings.root
        self._forget()
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return UpstreamError(
                f"the upstream at {root} is not answering ({_reason(exc)}); start it or check --base-url. "
                "cgstudio keeps serving and tries again on the next request"
            )
        if isinstance(exc, httpx.ReadTimeout):
            return UpstreamError(
                f"the upstream at {root} sent nothing for {self.settings.read_timeout_s:g} s; "
                "it may be overloaded (add replicas) or stuck"
            )
        return UpstreamError(f"the connection to the upstream at {root} failed: {_reason(exc)}")

    def _status_error(self, url: str, response: httpx.Response) -> CGStudioError:
        try:
            detail = error_detail(response.json())
        except ValueError:
            detail = response.text[:300]
        status = response.status_code
        if status in (400, 413, 422):
            return InvalidInputError(
                f"the upstream rejected the request ({status}): {detail}; if the prompt is longer than "
                "the upstream's context, set --ctx-size to its context length"
            )
        if status in (401, 403):
            return UpstreamError(f"the upstream refused our credentials ({status}); set --api-key-upstream")
        if status == 404:
            self._forget()  # the model may have changed: rediscover next time
            return UpstreamError(f"the upstream has no {url} or no such model (404): {detail}")
        if status == 429:
            retry = response.headers.get("retry-after", "1")
            return OverloadedError(
                f"the upstream is overloaded (429): {detail}", int(retry) if retry.isdigit() else 1
            )
        return UpstreamError(f"the upstream failed ({status}): {detail}")

    def _count_error(self) -> None:
        with self._lock:
            self.counters.upstream_errors += 1

    # -- decoding ----------------------------------------------------------------------------------
    def stream(self, request: DecodeRequest) -> TokenStream:
        tokens = request.tokens
        if not tokens:
            raise InvalidInputError("empty prompt: nothing to decode")
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
        url = self.settings.api + "/completions"
        cancel = request.cancel
        yielded = False
        attempt = 0
        while True:
            if cancel is not None and cancel.is_set():
                stats.finish = "cancelled"
                return
            with self._lock:
                self.counters.upstream_requests += 1
                self.counters.decode_calls += 1
                self.counters.evaluated_tokens += stats.n_prompt
            try:
                with self._client.stream("POST", url, json=body) as response:
                    if response.status_code != 200:
                        response.read()
                        self._count_error()
                        error = self._status_error(url, response)
                        raise _Retry(error) if response.status_code in RETRY_STATUS else error
                    with self._lock:
                        self.counters.active_sequences += 1
                    reader = self._read(response, request, stats)
                    try:
                        for piece in reader:
                            yielded = True
                            yield piece
                    finally:
                        reader.close()  # now, not at garbage collection: it records an early exit
                        with self._lock:
                            self.counters.active_sequences -= 1
                return
            except (_Retry, httpx.TransportError) as exc:
                error = exc.error if isinstance(exc, _Retry) else self._transport_error(exc)
                if isinstance(exc, httpx.TransportError):
                    self._count_error()
                retryable = isinstance(exc, _Retry | httpx.ConnectError | httpx.RemoteProtocolError)
                if yielded or not retryable or attempt >= self.settings.retries:
                    raise error from exc
                attempt += 1
                with self._lock:
                    self.counters.retries += 1
                wait = BACKOFF_S * 2 ** (attempt - 1)
                if cancel is not None and cancel.wait(wait):
                    stats.finish = "cancelled"
                    return
                if cancel is None:
                    time.sleep(wait)

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
        self._client.close()
        self.tokenizer.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def probe_upstream(settings: UpstreamSettings, *, timeout_s: float = 3.0) -> tuple[list[str], str]:
    """A quick health check: (model ids the upstream serves, a one-line status). Never raises."""
    try:
        with httpx.Client(timeout=timeout_s, headers=_auth(settings)) as client:
            response = client.get(settings.api + "/models")
        if response.status_code != 200:
            return [], f"not ready: GET /v1/models answered {response.status_code}"
        ids = [c["id"] for c in models_list(response.json())]
        return ids, f"answering, serving {', '.join(ids) or 'no model yet'}"
    except httpx.HTTPError as exc:
        return [], f"not answering ({_reason(exc)}); requests get 503 until it does"
    except (ValueError, CGStudioError) as exc:
        return [], f"not an OpenAI-compatible server? ({_reason(exc)})"


def model_info_for(settings: UpstreamSettings, *, timeout_s: float = 3.0) -> ModelInfo:
    """What the registry lists before the engine loads: the GGUF's info, or the upstream's name and family.

    Never fails for a down upstream: the family then comes from --family (or is 'unknown') and
    the registry reads the real info again once the engine has loaded.
    """
    from cgstudio.engine.remote.tokenizer import family_vocab, synthetic_info

    if settings.tokenizer is not None and settings.tokenizer.suffix == ".gguf":
        from cgstudio.engine.llamacpp import inspect_model

        return inspect_model(settings.tokenizer)
    ids, _ = probe_upstream(settings, timeout_s=timeout_s)
    name = settings.model or (ids[0] if ids else "remote")
    family = settings.family or family_from_name(name)
    fake = {text: i for i, text in enumerate(family_vocab(family).specials)}
    return synthetic_info(name, family, fake, n_ctx=0)


def _auth(settings: UpstreamSettings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
