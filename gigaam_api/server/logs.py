"""Server logging: plain text or JSON lines (LOG_LEVEL, LOG_JSON), and one line per request.

The middleware gives every request an id (echoed as X-Request-Id) and a RequestLog the route fills
in (model, format, audio and processing seconds); it writes the line when the response, streamed
or not, has ended, at a level that says whether anyone needs to look (`request_level`). Knows
nothing of transcription itself.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("gigaam_api.requests")

SERVER_LOGGERS = ("gigaam_api", "uvicorn")
"""The loggers configure_logging() sends to stderr: ours and the HTTP server's."""
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Polled by Docker, load balancers and Prometheus every few seconds: DEBUG lines, whatever
they answer (a loading or stopping server's 503 is expected there)."""
CLIENT_CLOSED_STATUS = 499
"""Logged (never sent) when the client disconnected before the response was complete."""

_SCOPE_KEY = "gigaam_api.request_log"
_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """A JSON object per record, for log collectors.

    Keys: `ts` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `msg`; then the record's
    `fields` extra (structured context such as a request's status and timings; a field never
    replaces one of those four); then `exc` and `stack` when the record carries them.
    """

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        context = getattr(record, "fields", None)
        if isinstance(context, dict):
            for key, value in context.items():
                line.setdefault(str(key), value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _ServerHandler(logging.StreamHandler[TextIO]):
    """The stderr handler configure_logging() installs; its class tells it apart from others."""


def configure_logging(level: str, as_json: bool) -> None:
    """Send SERVER_LOGGERS to stderr at `level`, and other loggers' warnings, as text or JSON.

    Calling it again replaces the handler it installed before. uvicorn's own handlers are dropped,
    so its start-up lines come out in the same format as ours.
    """
    handler = _ServerHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(_TEXT_FORMAT))
    for name in SERVER_LOGGERS:
        target = logging.getLogger(name)
        for old in list(target.handlers):
            if name == "uvicorn" or isinstance(old, _ServerHandler):
                target.removeHandler(old)
        target.addHandler(handler)
        target.setLevel(level)
        target.propagate = False
    # Other libraries' warnings (python-multipart's, say) would otherwise reach stderr through
    # logging's last-resort handler, unformatted: a plain line in a JSON log.
    libraries = _ServerHandler(sys.stderr)
    libraries.setFormatter(handler.formatter)
    libraries.setLevel(logging.WARNING)
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _ServerHandler):
            root.removeHandler(old)
    root.addHandler(libraries)


def request_level(path: str, status: int) -> int:
    """How loud a request's line is: a person should only have to read WARNING and ERROR.

    Probes are DEBUG whatever they answer (a loading model's 503 is expected, every 30 s); 503
    (queue full, model loading) is WARNING, since the client is told when to retry; other 5xx are
    ERROR; the rest, client mistakes included, INFO.
    """
    if path in PROBE_PATHS:
        return logging.DEBUG
    if status == 503:
        return logging.WARNING
    if status >= 500:
        return logging.ERROR
    return logging.INFO


@dataclass
class RequestLog:
    """Filled in by the route while it works; read once when the response ends."""

    request_id: str
    model: str | None = None
    response_format: str | None = None
    audio_s: float | None = None
    processing_s: float | None = None
    status_override: int | None = None

    def fields(self, method: str, path: str, status: int, elapsed_s: float) -> dict[str, Any]:
        """Everything the request's line reports, None where the route set nothing."""
        rtf = None
        if self.audio_s and self.processing_s is not None:
            rtf = round(self.processing_s / self.audio_s, 4)
        return {
            "request_id": self.request_id,
            "method": method,
            "path": path,
            "status": status,
            "audio_s": _rounded(self.audio_s),
            "processing_s": _rounded(self.processing_s),
            "rtf": rtf,
            "model": self.model,
            "format": self.response_format,
            "elapsed_s": round(elapsed_s, 3),
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def request_line(fields: dict[str, Any]) -> str:
    """The human-readable line: `req=<id> POST /path 200 1.234s audio_s=… model=…` (no Nones)."""
    head = (
        f"req={fields['request_id']} {fields['method']} {fields['path']} {fields['status']} "
        f"{fields['elapsed_s']:.3f}s"
    )
    shown = ("audio_s", "processing_s", "rtf", "model", "format")
    details = [f"{key}={fields[key]}" for key in shown if fields.get(key) is not None]
    return " ".join([head, *details])


def request_log(request: Request) -> RequestLog:
    """This request's RequestLog (a detached one outside the middleware, e.g. in unit tests)."""
    found = request.scope.get(_SCOPE_KEY)
    if isinstance(found, RequestLog):
        return found
    created = RequestLog(_new_request_id())
    request.scope[_SCOPE_KEY] = created
    return created


def _new_request_id() -> str:
    return uuid.uuid4().hex[:12]


class RequestLogMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware, which would buffer streams) access logging."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entry = RequestLog(_new_request_id())
        scope[_SCOPE_KEY] = entry
        status = 500
        started_s = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    *message.get("headers", []),
                    (b"x-request-id", entry.request_id.encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            final_status = entry.status_override or status
            path = str(scope.get("path", ""))
            fields = entry.fields(
                str(scope.get("method", "")), path, final_status, time.perf_counter() - started_s
            )
            logger.log(
                request_level(path, final_status),
                "%s",
                request_line(fields),
                extra={"fields": fields},
            )
