"""``UpstreamClient``: the one HTTP client for OpenAI-compatible upstreams (httpx, synchronous).

Used by the remote engine (``OpenAIEngine``), the eval ``--base-url`` client and the bench. One policy
for all of them:

Timeouts
    ``connect_timeout_s`` to open a connection, ``read_timeout_s`` for the first byte and between
    two chunks (so a long streamed answer is fine as long as tokens keep coming).
Retries
    Only where the upstream cannot have started the work: connection refused, reset or timed out
    while connecting, and HTTP 502/503/504. At most ``retries`` retries, waiting ``backoff_s``,
    then twice as long each time (0.25 s, 0.5 s, ...). A read timeout is never retried (the
    upstream may still be working), nor is any other status. A stream is retried only until its
    answer's headers arrive; after that its errors are the caller's.
Errors
    Every failure becomes one of cgstudio's errors (``core.errors``), each message saying what to do:
    down or timed out -> ``UpstreamError``; 400/413/422 -> ``InvalidInputError``; 401/403, 404 and
    other statuses -> ``UpstreamError``; 429 -> ``OverloadedError`` (with the upstream's Retry-After).
    ``Hints`` hold the parts of those messages that depend on the caller's options.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from cgstudio.core.errors import CGStudioError, InvalidInputError, OverloadedError, UpstreamError
from cgstudio.engine.remote.config import UpstreamSettings
from cgstudio.engine.remote.dialect import error_detail

RETRY_STATUS = frozenset({502, 503, 504})
BACKOFF_S = 0.25
# Raised before the request reached the upstream: safe to send again.
RETRY_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class Hints:
    """What the caller's user can do about an error, appended to its message."""

    down: str = "start it or check --base-url"
    credentials: str = "set --api-key-upstream"
    rejected: str = (
        "if the prompt is longer than the upstream's context, set --ctx-size to its context length"
    )


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 2
    backoff_s: float = BACKOFF_S

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...)."""
        return self.backoff_s * 2 ** (retry - 1)


class UpstreamClient:
    """Requests to one OpenAI-compatible server at ``base_url``; safe to share between threads.

    ``on_retry`` and ``on_error`` are called once per retry and per failed attempt (counters).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 300.0,
        retries: int = 2,
        max_connections: int = 64,
        hints: Hints | None = None,
        transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.read_timeout_s = read_timeout_s
        self.policy = RetryPolicy(retries)
        self.hints = hints or Hints()
        self._on_retry = on_retry
        self._on_error = on_error
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            transport=transport,
        )

    @classmethod
    def for_upstream(cls, settings: UpstreamSettings, **kw: Any) -> UpstreamClient:
        """A client for ``settings.root`` with its key, timeouts, retries and connection cap."""
        return cls(
            settings.root,
            api_key=settings.api_key,
            connect_timeout_s=settings.connect_timeout_s,
            read_timeout_s=settings.read_timeout_s,
            retries=settings.retries,
            max_connections=settings.max_connections,
            **kw,
        )

    # -- requests --------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """``method`` ``path`` (below ``base_url``) with retries; the 200 answer, else a mapped error."""
        url = self.base_url + path
        retry = 0
        while True:
            try:
                response = self._client.request(method, url, json=body)
            except httpx.TransportError as exc:
                self._failed()
                if isinstance(exc, RETRY_ERRORS) and self._may_retry(retry):
                    retry = self._pause(retry + 1, None)
                    continue
                raise self.transport_error(exc) from exc
            if response.status_code == 200:
                return response
            self._failed()
            if response.status_code in RETRY_STATUS and self._may_retry(retry):
                retry = self._pause(retry + 1, None)
                continue
            raise self.status_error(url, response)

    def json(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """``request`` and its answer's JSON document."""
        response = self.request(method, path, body)
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(f"{response.request.url} answered with something other than JSON") from exc

    @contextlib.contextmanager
    def stream(
        self, path: str, body: dict[str, Any], *, cancel: threading.Event | None = None
    ) -> Iterator[httpx.Response | None]:
        """POST ``body`` and yield the streamed 200 answer (``None`` if ``cancel`` was set while
        waiting to retry). Leaving the block closes the stream, which aborts the upstream request."""
        url = self.base_url + path
        retry = 0
        while True:
            error: CGStudioError | None = None
            cause: BaseException | None = None
            with contextlib.ExitStack() as stack:
                try:
                    response = stack.enter_context(self._client.stream("POST", url, json=body))
                    if response.status_code != 200:
                        response.read()
                except httpx.TransportError as exc:
                    error, cause, retryable = self.transport_error(exc), exc, isinstance(exc, RETRY_ERRORS)
                else:
                    if response.status_code == 200:
                        yield response
                        return
                    error, retryable = self.status_error(url, response), response.status_code in RETRY_STATUS
            self._failed()
            if not (retryable and self._may_retry(retry)):
                raise error from cause
            retry = self._pause(retry + 1, cancel)
            if retry < 0:
                yield None
                return

    def close(self) -> None:
        self._client.close()

    # -- retries ---------------------------------------------------------------------------------
    def _may_retry(self, retry: int) -> bool:
        return retry < self.policy.retries

    def _pause(self, retry: int, cancel: threading.Event | None) -> int:
        """Wait before retry number ``retry``; -1 when ``cancel`` was set meanwhile."""
        if self._on_retry is not None:
            self._on_retry()
        wait = self.policy.delay(retry)
        if cancel is None:
            time.sleep(wait)
        elif cancel.wait(wait):
            return -1
        return retry

    def _failed(self) -> None:
        if self._on_error is not None:
            self._on_error()

    # -- error mapping ---------------------------------------------------------------------------
    def transport_error(self, exc: httpx.TransportError) -> UpstreamError:
        """The error for a request that got no answer."""
        where = f"the upstream at {self.base_url}"
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return UpstreamError(
                f"{where} is not answering (cannot reach it: {reason(exc)}); {self.hints.down}"
            )
        if isinstance(exc, httpx.ReadTimeout):
            return UpstreamError(
                f"{where} sent nothing for {self.read_timeout_s:g} s; "
                "it may be overloaded (add replicas) or stuck"
            )
        return UpstreamError(f"the connection to {where} failed: {reason(exc)}")

    def status_error(self, url: str, response: httpx.Response) -> CGStudioError:
        """The error for a non-200 answer (its body already read)."""
        try:
            detail = error_detail(response.json())
        except ValueError:
            detail = response.text[:300]
        status = response.status_code
        if status in (400, 413, 422):
            hint = f"; {self.hints.rejected}" if self.hints.rejected else ""
            return InvalidInputError(f"the upstream rejected the request ({status}): {detail}{hint}")
        if status in (401, 403):
            return UpstreamError(f"the upstream refused our credentials ({status}); {self.hints.credentials}")
        if status == 404:
            return UpstreamError(f"the upstream has no {url} or no such model (404): {detail}")
        if status == 429:
            retry = response.headers.get("retry-after", "1")
            return OverloadedError(
                f"the upstream is overloaded (429): {detail}", int(retry) if retry.isdigit() else 1
            )
        return UpstreamError(f"the upstream failed ({status}): {detail}")


def reason(exc: BaseException) -> str:
    """An exception's text, or its type's name when it has none."""
    text = str(exc).strip()
    return text or type(exc).__name__
