"""Logging setup (LOG_LEVEL, LOG_JSON) and the one log line per request.

The middleware gives every request an id (echoed as X-Request-Id) and a RequestLog the route
fills in (model, format, audio and processing seconds); it writes the line when the response,
streamed or not, has ended. Knows nothing of transcription itself.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("gigaam_api.requests")

_SCOPE_KEY = "gigaam_api.request_log"
_HANDLER_NAME = "gigaam-api"
CLIENT_CLOSED_STATUS = 499
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Polled by Docker, load balancers and Prometheus every few seconds: DEBUG lines, whatever
they answer (a loading or stopping server's 503 is expected there)."""
"""Logged (never sent) when the client disconnected before the response was complete."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `fields` extra."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, as_json: bool) -> None:
    """Send the package's logs to stderr at `level`, as text or JSON (idempotent)."""
    package = logging.getLogger("gigaam_api")
    package.setLevel(level)
    for handler in list(package.handlers):
        if handler.get_name() == _HANDLER_NAME:
            package.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        JsonFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    package.addHandler(handler)
    package.propagate = False


@dataclass
class RequestLog:
    """Filled in by the route while it works; read once when the response ends."""

    request_id: str
    model: str | None = None
    response_format: str | None = None
    audio_s: float | None = None
    processing_s: float | None = None
    status_override: int | None = None


def request_log(request: Request) -> RequestLog:
    """This request's RequestLog (a detached one outside the middleware, e.g. in unit tests)."""
    found = request.scope.get(_SCOPE_KEY)
    if isinstance(found, RequestLog):
        return found
    created = RequestLog(uuid.uuid4().hex[:12])
    request.scope[_SCOPE_KEY] = created
    return created


class RequestLogMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware, which would buffer streams) access logging."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry = RequestLog(uuid.uuid4().hex[:12])
        scope[_SCOPE_KEY] = entry
        status = 500
        started_s = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", entry.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._write(scope, entry, entry.status_override or status, started_s)

    @staticmethod
    def _write(scope: Scope, entry: RequestLog, status: int, started_s: float) -> None:
        elapsed_s = time.perf_counter() - started_s
        rtf = None
        if entry.audio_s and entry.processing_s is not None:
            rtf = entry.processing_s / entry.audio_s
        fields = {
            "request_id": entry.request_id,
            "method": scope.get("method"),
            "path": scope.get("path"),
            "status": status,
            "audio_s": None if entry.audio_s is None else round(entry.audio_s, 3),
            "processing_s": None if entry.processing_s is None else round(entry.processing_s, 3),
            "rtf": None if rtf is None else round(rtf, 4),
            "model": entry.model,
            "format": entry.response_format,
            "elapsed_s": round(elapsed_s, 3),
        }
        level = logging.INFO if status < 500 else logging.ERROR
        if scope.get("path") in PROBE_PATHS:
            level = logging.DEBUG  # health checks and scrapes would drown the log
        logger.log(
            level,
            "%s %s %s %s",
            fields["request_id"],
            fields["method"],
            fields["path"],
            " ".join(
                f"{key}={value}"
                for key, value in fields.items()
                if key not in ("request_id", "method", "path")
            ),
            extra={"fields": fields},
        )
