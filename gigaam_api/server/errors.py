"""Every failure the HTTP layer can answer, mapped in one table to an OpenAI-shaped body and status.

The domain errors (gigaam_api/errors.py) and the few HTTP-layer ones defined here (a form field,
the key, the upload) meet in `_RULES`; `describe` walks an exception's classes to its first rule.
Routes raise; the handlers registered here render. Bodies are always
{"error": {"message", "type", "param", "code"}}, never FastAPI's {"detail": ...}.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gigaam_api.errors import (
    AudioDecodeError,
    AudioToolMissingError,
    AudioTooLongError,
    GigaamError,
    InsufficientStorageError,
    JobNotDoneError,
    JobNotFoundError,
    ModelLoadFailedError,
    ModelLoadingError,
    QueueFullError,
    ShuttingDownError,
    TranscriptionCancelledError,
    UnavailableError,
)

logger = logging.getLogger(__name__)

INVALID = "invalid_request_error"
SERVER = "server_error"
_UNEXPECTED = "The server had an error while processing the request."


class ApiError(Exception):
    """A failure of the HTTP request itself (its fields, key or upload), not of the audio."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class InvalidFieldError(ApiError):
    """A form field has a value the API does not accept."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message, param=param)


class ModelNotAcceptedError(ApiError):
    """The request names a model outside ALLOWED_MODELS and MODEL_ALIASES."""

    def __init__(self, model: str, accepted: list[str]) -> None:
        super().__init__(
            f"The model '{model}' does not exist or you do not have access to it. "
            f"Accepted names: {', '.join(accepted)}.",
            param="model",
        )


class ModelNotFoundError(ApiError):
    """GET /v1/models/{id} for a name this server does not serve."""

    def __init__(self, model: str) -> None:
        super().__init__(f"The model '{model}' does not exist.", param="model")


class AuthError(ApiError):
    """The Authorization header is missing or carries the wrong key."""


class UploadTooLargeError(ApiError):
    """The request body exceeds MAX_UPLOAD_MB; reading stopped at the limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"Maximum upload size exceeded: the limit is {limit_bytes} bytes "
            f"({limit_bytes // (1024 * 1024)} MiB, MAX_UPLOAD_MB).",
            param="file",
        )


class UploadTimeoutError(ApiError):
    """The upload stalled (UPLOAD_IDLE_TIMEOUT_S) or crawled below UPLOAD_MIN_RATE_KIB_S."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="file")


@dataclass(frozen=True)
class Rule:
    """How one class of error is answered."""

    status_code: int
    error_type: str
    code: str | None = None
    param: str | None = None
    """Used when the exception carries no param of its own."""
    should_retry: bool | None = None
    """Sent as `x-should-retry` (openai-python honours it); None sends nothing."""
    show_message: bool = True
    """False for the unexpected: their text may hold internals."""


_RULES: dict[type[BaseException], Rule] = {
    # 400: the request or its audio
    InvalidFieldError: Rule(400, INVALID, "invalid_value"),
    ModelNotAcceptedError: Rule(400, INVALID, "model_not_found"),
    AudioDecodeError: Rule(400, INVALID, "invalid_audio", "file"),
    AudioTooLongError: Rule(400, INVALID, "audio_too_long", "file"),
    # 401, 404, 408, 409, 413
    AuthError: Rule(401, INVALID, "invalid_api_key"),
    ModelNotFoundError: Rule(404, INVALID, "model_not_found"),
    JobNotFoundError: Rule(404, INVALID, "job_not_found"),
    UploadTimeoutError: Rule(408, INVALID, "upload_timeout"),
    JobNotDoneError: Rule(409, INVALID, "job_not_done", should_retry=False),
    TranscriptionCancelledError: Rule(409, INVALID, "job_cancelled", should_retry=False),
    UploadTooLargeError: Rule(413, INVALID, "file_too_large"),
    # 500: the server
    AudioToolMissingError: Rule(500, SERVER, "audio_tool_missing", should_retry=False),
    GigaamError: Rule(500, SERVER),
    # 503: not now (Retry-After from the exception)
    QueueFullError: Rule(503, SERVER, "queue_full"),
    ModelLoadingError: Rule(503, SERVER, "model_loading"),
    ModelLoadFailedError: Rule(503, SERVER, "model_unavailable"),
    ShuttingDownError: Rule(503, SERVER, "server_shutting_down"),
    InsufficientStorageError: Rule(503, SERVER, "insufficient_storage"),
    Exception: Rule(500, SERVER, show_message=False),
}


@dataclass(frozen=True)
class ErrorInfo:
    status_code: int
    error_type: str
    message: str
    param: str | None = None
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def _rule(exc: BaseException) -> Rule:
    for cls in type(exc).__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            return rule
    return _RULES[Exception]


def _headers(exc: BaseException, rule: Rule) -> tuple[tuple[str, str], ...]:
    if isinstance(exc, AuthError):
        return (("WWW-Authenticate", "Bearer"),)
    if isinstance(exc, UnavailableError):
        if exc.retry_after_s is None:
            return (("x-should-retry", "false"),)
        return (("Retry-After", str(exc.retry_after_s)),)
    if rule.should_retry is not None:
        return (("x-should-retry", str(rule.should_retry).lower()),)
    return ()


def describe(exc: BaseException) -> ErrorInfo:
    """The status and OpenAI error fields for any exception (500 for the unexpected)."""
    rule = _rule(exc)
    message = (str(exc) or type(exc).__name__) if rule.show_message else _UNEXPECTED
    param = exc.param if isinstance(exc, ApiError) and exc.param else rule.param
    return ErrorInfo(
        rule.status_code, rule.error_type, message, param, rule.code, _headers(exc, rule)
    )


def error_body(info: ErrorInfo) -> dict[str, dict[str, str | None]]:
    return {
        "error": {
            "message": info.message,
            "type": info.error_type,
            "param": info.param,
            "code": info.code,
        }
    }


def error_response(exc: BaseException) -> JSONResponse:
    info = describe(exc)
    if info.status_code >= 500 and info.status_code != 503:  # 503 (busy, loading) is expected
        logger.error("request failed: %s", info.message, exc_info=exc)
    return JSONResponse(error_body(info), status_code=info.status_code, headers=dict(info.headers))


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(location) or None
    return f"Invalid value for '{param}': {first.get('msg', 'invalid')}", param


def register_exception_handlers(app: FastAPI) -> None:
    """Route every error through `describe`, replacing FastAPI's {"detail": ...} handlers."""

    async def on_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = _validation_message(exc)
        return error_response(InvalidFieldError(param or "body", message))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = str(exc.detail) if exc.detail else "Request failed."
        info = ErrorInfo(
            exc.status_code,
            INVALID if exc.status_code < 500 else SERVER,
            message,
            headers=tuple((exc.headers or {}).items()),
        )
        return JSONResponse(
            error_body(info), status_code=info.status_code, headers=dict(info.headers)
        )

    app.add_exception_handler(ApiError, on_error)
    app.add_exception_handler(GigaamError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_middleware(UnexpectedErrorMiddleware)


class UnexpectedErrorMiddleware:
    """Answers an exception no handler took with the OpenAI-shaped 500, logged once.

    Starlette's own `Exception` handler re-raises after answering, so the same traceback was
    logged twice (ours, then uvicorn's). Once the response has started, the error goes on up:
    uvicorn then closes the connection, the only thing left to do.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as exc:
            if started:
                raise
            await error_response(exc)(scope, receive, send)
