"""Pure ASGI middleware, run before routing and body validation.

Order (outermost first): CORS (only when configured) -> request metrics -> auth -> body limit.
So a request without the key is a 401 even if its body is malformed or huge, and every
answer, 401 and 413 included, is counted by endpoint and status.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cgstudio.errors import AuthError
from cgstudio.server.config import is_loopback
from cgstudio.server.errors import ForbiddenError, RequestTooLargeError, error_response
from cgstudio.server.metrics import Metrics

PUBLIC_PATHS = frozenset(
    {"/", "/health", "/favicon.ico", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}
)
PUBLIC_PREFIXES = ("/static/",)
ADMIN_PREFIX = "/admin/"


def extract_key(headers: Headers) -> str | None:
    """The API key from ``Authorization: Bearer K`` (what OpenAI and Ollama clients send) or ``X-API-Key``."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


def _matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class AuthMiddleware:
    def __init__(self, app: ASGIApp, api_key: str | None, admin_key: str | None) -> None:
        self.app = app
        self.api_key = api_key
        self.admin_key = admin_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        key = extract_key(Headers(scope=scope))
        scope.setdefault("state", {})["api_key"] = key
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        error = self._check(path, key, scope)
        if error is not None:
            await error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check(self, path: str, key: str | None, scope: Scope) -> Exception | None:
        admin = path.startswith(ADMIN_PREFIX)
        expected = self.admin_key if admin and self.admin_key else self.api_key
        if expected is not None:
            if key is None:
                return AuthError(
                    "missing API key: send 'Authorization: Bearer KEY' (or 'X-API-Key: KEY')"
                    + (" with the admin key" if admin and self.admin_key else "")
                )
            if not _matches(key, expected):
                return AuthError(
                    "wrong API key"
                    + (" (admin endpoints need the admin key)" if admin and self.admin_key else "")
                )
            return None
        client = scope.get("client")
        if admin and not (client and is_loopback(client[0])):
            return ForbiddenError("admin endpoints without an API key answer loopback clients only")
        return None


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413 (by Content-Length, or while reading a chunked body).

    Every body is JSON here: one sent as form data or text/plain (``curl -d``) is read as JSON too,
    as llama.cpp's server does.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()  # later calls see the disconnect

        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        ctype = Headers(scope=scope).get("content-type", "")
        if "json" not in ctype:
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLargeError(
            f"the request body is over the {self.limit:,}-byte limit; send less context"
        )
        await error_response(error)(scope, receive, send)


class MetricsMiddleware:
    """Count every HTTP answer by endpoint (the route's path template) and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics, known_paths: Callable[[], frozenset[str]]) -> None:
        self.app = app
        self.metrics = metrics
        self.known_paths = known_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or scope["path"]
            if endpoint not in self.known_paths():
                endpoint = "other"
            self.metrics.requests.labels(endpoint, str(status)).inc()
