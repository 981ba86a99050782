"""Every failure the HTTP layer can answer, mapped once to an OpenAI-shaped body and status.

    AudioDecodeError, AudioTooLongError     400 invalid_request_error  (param "file")
    InvalidFieldError, request validation   400 invalid_request_error  (param = the field)
    ModelNotAcceptedError                   400 invalid_request_error  model_not_found
    AuthError                               401 invalid_request_error  invalid_api_key
    NotFound / method not allowed           404 / 405 invalid_request_error
    UploadTooLargeError                     413 invalid_request_error  file_too_large
    AudioToolMissingError, anything else    500 server_error
    ServiceUnavailableError (queue, load)   503 server_error + Retry-After
Bodies are always {"error": {"message", "type", "param", "code"}}, never FastAPI's {"detail": ...}.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gigaam_api.errors import (
    AudioDecodeError,
    AudioToolMissingError,
    AudioTooLongError,
    GigaamError,
)

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An HTTP-layer failure that already knows its status and OpenAI error fields."""

    status_code = 400
    error_type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def headers(self) -> dict[str, str]:
        return {}


class InvalidFieldError(ApiError):
    """A form field has a value the API does not accept."""

    code = "invalid_value"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message, param=param)


class ModelNotAcceptedError(ApiError):
    """The request names a model outside ALLOWED_MODELS and MODEL_ALIASES."""

    code = "model_not_found"

    def __init__(self, model: str, accepted: list[str]) -> None:
        super().__init__(
            f"The model '{model}' does not exist or you do not have access to it. "
            f"Accepted names: {', '.join(accepted)}.",
            param="model",
        )


class ModelNotFoundError(ApiError):
    """GET /v1/models/{id} for a name this server does not serve."""

    status_code = 404
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model '{model}' does not exist.", param="model")


class AuthError(ApiError):
    """The Authorization header is missing or carries the wrong key."""

    status_code = 401
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class UploadTooLargeError(ApiError):
    """The request body exceeds MAX_UPLOAD_MB; reading stopped at the limit."""

    status_code = 413
    code = "file_too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            f"Maximum upload size exceeded: the limit is {limit_bytes} bytes "
            f"({limit_bytes // (1024 * 1024)} MiB, MAX_UPLOAD_MB).",
            param="file",
        )


class ServiceUnavailableError(ApiError):
    """The server cannot take the request now; Retry-After says when to try again."""

    status_code = 503
    error_type = "server_error"

    def __init__(self, message: str, *, code: str, retry_after_s: int | None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        if self.retry_after_s is None:
            return {"x-should-retry": "false"}
        return {"Retry-After": str(self.retry_after_s)}


@dataclass(frozen=True)
class ErrorInfo:
    status_code: int
    error_type: str
    message: str
    param: str | None = None
    code: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def describe(exc: BaseException) -> ErrorInfo:
    """The status and OpenAI error fields for any exception (500 for the unexpected)."""
    if isinstance(exc, ApiError):
        return ErrorInfo(
            exc.status_code,
            exc.error_type,
            exc.message,
            exc.param,
            exc.code,
            tuple(exc.headers().items()),
        )
    if isinstance(exc, AudioTooLongError):
        return ErrorInfo(400, "invalid_request_error", str(exc), "file", "audio_too_long")
    if isinstance(exc, AudioDecodeError):
        return ErrorInfo(400, "invalid_request_error", str(exc), "file", "invalid_audio")
    if isinstance(exc, AudioToolMissingError):
        return ErrorInfo(
            500,
            "server_error",
            str(exc),
            None,
            "audio_tool_missing",
            (("x-should-retry", "false"),),
        )
    if isinstance(exc, GigaamError):
        return ErrorInfo(500, "server_error", str(exc) or type(exc).__name__)
    return ErrorInfo(500, "server_error", "The server had an error while processing the request.")


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

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
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
            "invalid_request_error" if exc.status_code < 500 else "server_error",
            message,
            headers=tuple((exc.headers or {}).items()),
        )
        return JSONResponse(
            error_body(info), status_code=info.status_code, headers=dict(info.headers)
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(GigaamError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_api_error)
