"""Typed errors -> HTTP status and JSON, in one table, for every dialect.

    {"error": {"message": "...", "type": "invalid_request_error", "code": "model_not_found"}}

(OpenAI's shape; Ollama's routes under /api/ answer ``{"error": "...", "code": "..."}``.)

Status and code come from the error class itself (``http_status``, ``code``), so the tree in
core/errors.py is the only table. Nothing here ever puts a stack
trace in a response: unexpected exceptions are logged and answered with a generic 500.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from cgstudio.core.errors import (
    AuthError,
    CGStudioError,
    InvalidInputError,
    OverloadedError,
)

log = logging.getLogger("cgstudio.server")


class RequestTooLargeError(CGStudioError):
    http_status = 413
    code = "request_too_large"


class RouteNotFoundError(CGStudioError):
    http_status = 404
    code = "not_found"


class MethodNotAllowedError(CGStudioError):
    http_status = 405
    code = "method_not_allowed"


class ForbiddenError(CGStudioError):
    http_status = 403
    code = "forbidden"


class HostNotAllowedError(ForbiddenError):
    """The Host header names a host this server does not answer (DNS rebinding)."""

    code = "host_not_allowed"


class OriginNotAllowedError(ForbiddenError):
    """A browser request from a page on another site (cross-site request forgery)."""

    code = "origin_not_allowed"


class UnsupportedMediaTypeError(CGStudioError):
    http_status = 415
    code = "unsupported_media_type"


class RequestTimeoutError(CGStudioError):
    http_status = 408
    code = "request_timeout"


class ShuttingDownError(OverloadedError):
    """The server is stopping: queued and running generations end with this error."""

    code = "shutting_down"


class ListenError(CGStudioError):
    """``cgstudio serve`` cannot listen on the address (port in use, not this machine's address)."""

    code = "listen_failed"


def openai_error_type(status: int) -> str:
    """OpenAI's error ``type`` for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    return "server_error" if status >= 500 else "invalid_request_error"


INTERNAL = (500, "server_error", "internal_error", "internal server error; the server log has the details")


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: str


class ErrorBody(BaseModel):
    """The error shape of every endpoint (OpenAI's)."""

    error: ErrorDetail


def classify(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, type, code, message) for any exception; unexpected ones say nothing internal."""
    if isinstance(exc, UnicodeError):  # a lone surrogate in JSON text cannot be encoded for the tokenizer
        exc = InvalidInputError("the text is not valid Unicode (a lone surrogate?); send valid UTF-8 text")
    if isinstance(exc, CGStudioError):
        # The class is the one source of truth: its http_status and code (core/errors.py).
        return exc.http_status, openai_error_type(exc.http_status), exc.code, exc.message
    return INTERNAL


def error_payload(exc: BaseException) -> dict[str, Any]:
    _, kind, code, message = classify(exc)
    return {"error": {"message": message, "type": kind, "code": code}}


OLLAMA_PREFIX = "/api/"


class ErrorJSONResponse(JSONResponse):
    """An error body in the dialect of the path it answers, with non-ASCII escaped.

    OpenAI's shape everywhere, except under ``/api/`` (Ollama's routes), where clients read
    ``{"error": "message"}`` (ollama-python's ``ResponseError``, Continue's Ollama provider);
    ``code`` rides along there for scripts. The path is known only when the response is sent,
    so every handler and middleware gets the right shape from this one place.

    Non-ASCII is escaped: a message that quotes the request (a field name, a path) may hold a
    lone surrogate from a ``\\ud800`` escape, which UTF-8 cannot encode.
    """

    def __init__(self, content: Any, *args: Any, **kwargs: Any) -> None:
        self.payload = content
        super().__init__(content, *args, **kwargs)

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = self.payload.get("error") if isinstance(self.payload, dict) else None
        if str(scope.get("path", "")).startswith(OLLAMA_PREFIX) and isinstance(detail, dict):
            self.body = self.render({"error": detail.get("message", ""), "code": detail.get("code")})
            self.headers["content-length"] = str(len(self.body))
        await super().__call__(scope, receive, send)


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> JSONResponse:
    status, *_ = classify(exc)
    headers = dict(headers or {})
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(exc.retry_after_s)
    if isinstance(exc, AuthError):
        headers["WWW-Authenticate"] = "Bearer"
    if status >= 500 and not isinstance(exc, CGStudioError):
        log.error("unexpected error", exc_info=exc)
    return ErrorJSONResponse(error_payload(exc), status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> tuple[str, str]:
    """A one-line message naming the bad fields; malformed JSON gets its own code."""
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            return "invalid_json", f"the request body is not valid JSON: {ctx.get('error', 'parse error')}"
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return "invalid_request", "; ".join(parts[:8]) or "invalid request"


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(CGStudioError)
    async def _typed(request: Request, exc: CGStudioError) -> JSONResponse:
        return error_response(exc)

    # Starlette runs the handler for ``Exception`` outermost and then re-raises: a traceback in the
    # log, a 500 in the metrics and a closed keep-alive connection. Input errors that surface as
    # UnicodeError (a lone surrogate meeting the tokenizer's UTF-8 encoding) need their own handler.
    @app.exception_handler(UnicodeError)
    async def _unicode(request: Request, exc: UnicodeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        code, message = validation_message(exc)
        body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
        return ErrorJSONResponse(body, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(RouteNotFoundError(f"no endpoint {request.method} {request.url.path}"))
        if exc.status_code == 405:
            return error_response(
                MethodNotAllowedError(f"{request.url.path} does not accept {request.method}"),
                headers=dict(exc.headers or {}),
            )
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        body = {"error": {"message": detail, "type": kind, "code": f"http_{exc.status_code}"}}
        return ErrorJSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)


# For route decorators: document the error statuses every API route may answer.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Invalid input, unsupported option or prompt too long."},
    401: {"model": ErrorBody, "description": "Missing or wrong API key."},
    403: {"model": ErrorBody, "description": "A foreign Host or Origin (a web page on another site)."},
    404: {"model": ErrorBody, "description": "Unknown model."},
    413: {"model": ErrorBody, "description": "Request body too large."},
    415: {"model": ErrorBody, "description": "A body that is not JSON: send Content-Type: application/json."},
    503: {
        "model": ErrorBody,
        "description": "Overloaded: the queue is full; retry after Retry-After seconds.",
    },
}
