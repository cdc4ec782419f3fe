"""Pure ASGI middleware, run before routing and body validation.

Order (outermost first): CORS (only when configured) -> request metrics -> browser guard (Host,
Origin) -> auth -> body (type, size, read time). So a web page on another site is refused before
anything else looks at its request, a request without the key is a 401 even if its body is
malformed or huge, and every answer, 403, 401 and 413 included, is counted by endpoint and status.

The browser guard and the Content-Type rule are what keep web pages off a local server. A page
on any site can send "simple" requests (text/plain, form or multipart bodies; no preflight) to
127.0.0.1, and by DNS rebinding (its own name resolving to 127.0.0.1) even read the answers.
As Ollama does, the server answers only Host names that cannot be rebound (localhost, IP
addresses, --host, --allowed-host), only browser Origins of its own pages (or --cors-origin), and
only JSON bodies. Clients that are not browsers send no Origin and are unaffected.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cgstudio.core.errors import AuthError
from cgstudio.server.config import ServerSettings, is_ip_address, is_loopback
from cgstudio.server.errors import (
    ForbiddenError,
    HostNotAllowedError,
    OriginNotAllowedError,
    RequestTimeoutError,
    RequestTooLargeError,
    UnsupportedMediaTypeError,
    error_response,
)
from cgstudio.server.prometheus import Metrics

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


def split_host(value: str) -> tuple[str, int | None]:
    """``Host`` header -> (lower-case name without a trailing dot, port or None). ``[::1]:80`` -> ``::1``."""
    value = value.strip().lower()
    port = ""
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:
        name = value
    return name.rstrip("."), int(port) if port.isdigit() else None


@dataclass(frozen=True)
class BrowserPolicy:
    """Which Host and Origin values requests may carry (see the module docstring).

    Host: checked when the server listens on loopback (a name off loopback reaches it through a
    proxy or a service name, and the required API key protects it there) or when --allowed-host
    is given; an IP address always passes, since only names can be rebound. ``*`` turns it off.
    Origin: absent (not a browser), the page's own origin (same host and port as ``Host``), or a
    --cors-origin value (``*`` = any).
    """

    check_host: bool
    host_names: frozenset[str]
    host_suffixes: tuple[str, ...]
    origins: frozenset[str]
    any_origin: bool

    @classmethod
    def from_settings(cls, config: ServerSettings) -> BrowserPolicy:
        allowed = config.allowed_hosts
        names = {"localhost", split_host(config.host)[0]}
        names.update(h for h in allowed if not h.startswith("*"))
        origins = frozenset(_origin_key(o) for o in config.cors_origins)
        return cls(
            check_host="*" not in allowed and (is_loopback(config.host) or bool(allowed)),
            host_names=frozenset(names),
            host_suffixes=tuple(h[1:] for h in allowed if h.startswith("*.")),
            origins=origins,
            any_origin="*" in origins,
        )

    def host_error(self, host: str | None) -> HostNotAllowedError | None:
        if not self.check_host or host is None:  # HTTP/1.0 without Host: not a browser
            return None
        name, _ = split_host(host)
        if name in self.host_names or is_ip_address(name) or name.endswith(self.host_suffixes):
            return None
        return HostNotAllowedError(
            f"Host {host!r} is not allowed: this server answers localhost and IP addresses "
            f"(a web page could reach it by DNS rebinding under other names); restart it with "
            f"--allowed-host {name or 'NAME'} to answer that name"
        )

    def origin_error(self, origin: str | None, host: str | None) -> OriginNotAllowedError | None:
        if origin is None or self.any_origin or _origin_key(origin) in self.origins:
            return None
        if host is not None and _same_origin(origin, host):
            return None
        return OriginNotAllowedError(
            f"Origin {origin!r} is not allowed: browsers may call this server only from its own "
            f"pages (a page on another site must not drive it); restart it with --cors-origin "
            f"{origin} to allow that site"
        )


def _origin_key(origin: str) -> str:
    return origin.strip().lower().rstrip("/")


def _same_origin(origin: str, host: str) -> bool:
    """The page's origin names the host (and, when ``Host`` has one, the port) the request went to."""
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    name, port = split_host(host)
    return parts.hostname.rstrip(".") == name and (port is None or port == origin_port)


class BrowserGuardMiddleware:
    """403 for a foreign Host or Origin, on every path (the playground and /health too)."""

    def __init__(self, app: ASGIApp, policy: BrowserPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            host = headers.get("host")
            error = self.policy.host_error(host) or self.policy.origin_error(headers.get("origin"), host)
            if error is not None:
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


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


def is_json_type(content_type: str) -> bool:
    """``application/json`` or ``application/*+json``, parameters (charset) ignored."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


class BodyLimitMiddleware:
    """Read the whole body before the route runs, within bounds of type, size and time.

    * Type: a body with a Content-Type that is not JSON gets 415. Browsers send cross-site requests
      without a preflight only as text/plain, form or multipart, so refusing those keeps web pages
      out; a body without a Content-Type (some non-browser clients) is read as JSON.
    * Size: over ``limit`` bytes gets 413 (by Content-Length, or while reading a chunked body).
    * Time: a body that has not fully arrived ``read_timeout_s`` after the headers gets 408 and the
      connection is closed, so a client sending a byte a second cannot hold it open.
    """

    def __init__(self, app: ASGIApp, limit: int, read_timeout_s: float) -> None:
        self.app = app
        self.limit = limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        ctype = headers.get("content-type")
        if ctype is not None and not is_json_type(ctype):
            error = UnsupportedMediaTypeError(
                f"Content-Type {ctype!r} is not accepted: request bodies are JSON; send "
                "'Content-Type: application/json' (curl: -H 'Content-Type: application/json' or --json)"
            )
            await error_response(error)(scope, receive, send)
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        deadline = asyncio.get_running_loop().time() + self.read_timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await self._timed_out(scope, receive, send)
                return
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

        if ctype is None:  # FastAPI reads only typed bodies as JSON
            scope = {**scope, "headers": [*scope["headers"], (b"content-type", b"application/json")]}
        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTooLargeError(
            f"the request body is over the {self.limit:,}-byte limit; send less context"
        )
        await error_response(error)(scope, receive, send)

    async def _timed_out(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = RequestTimeoutError(
            f"the request body did not arrive within {self.read_timeout_s:g} s; send it at once "
            "(the server's --read-timeout)"
        )
        # Close: the rest of the body may still trickle in, and nothing will read it.
        await error_response(error, headers={"Connection": "close"})(scope, receive, send)


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
