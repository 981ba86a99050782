"""A multipart upload streamed straight to one temporary file, with the size cap enforced as bytes
arrive: an oversized body is cut off at MAX_UPLOAD_MB and its partial file deleted at once.

Starlette's own form parser spools every file without a total limit, so the body is parsed here
with python-multipart's streaming parser. Knows nothing of audio, forms' meaning or the model.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gigaam_api.server.errors import InvalidFieldError, UploadTooLargeError

FILE_FIELD = "file"
FIELDS_ALLOWANCE_BYTES = 1024 * 1024
"""Room for the non-file fields and part headers on top of the file's own limit."""
_MAX_FIELD_BYTES = 64 * 1024
_MAX_PARTS = 1000
_FLUSH_BYTES = 1024 * 1024
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")


@dataclass
class Upload:
    """The stored file part and the other fields of one request; the caller owns the file."""

    path: Path | None = None
    filename: str | None = None
    size_bytes: int = 0
    fields: dict[str, list[str]] = field(default_factory=dict)

    def discard(self) -> None:
        """Delete the stored file (idempotent)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


class _PartState:
    """Where the parser is inside the current part."""

    def __init__(self) -> None:
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, bytes] = {}
        self.name: str | None = None
        self.filename: str | None = None
        self.value = bytearray()
        self.sink: BinaryIO | None = None
        self.skip = False


class _Receiver:
    """python-multipart callbacks that route parts to memory (fields) or disk (the file)."""

    def __init__(self, directory: Path, limit_bytes: int) -> None:
        self.directory = directory
        self.limit_bytes = limit_bytes
        self.upload = Upload()
        self.part = _PartState()
        self.parts = 0
        self.pending = bytearray()
        self.file: BinaryIO | None = None
        self.error: Exception | None = None

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise InvalidFieldError(FILE_FIELD, f"Too many form parts (limit {_MAX_PARTS}).")
        self.part = _PartState()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        name = bytes(self.part.header_field).decode("latin-1").strip().lower()
        self.part.headers[name] = bytes(self.part.header_value)
        self.part.header_field.clear()
        self.part.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.headers.get("content-disposition"))
        name = options.get(b"name")
        if name is None:
            raise InvalidFieldError(FILE_FIELD, "A form part has no name.")
        self.part.name = name.decode("utf-8", "replace")
        filename = options.get(b"filename")
        self.part.filename = None if filename is None else filename.decode("utf-8", "replace")
        if self.part.name == FILE_FIELD:
            if self.file is not None or self.upload.path is not None:
                raise InvalidFieldError(FILE_FIELD, "Send exactly one 'file' part.")
            self._open_file(self.part.filename)
        elif self.part.filename is not None:
            self.part.skip = True  # another file part: not ours to store

    def _open_file(self, filename: str | None) -> None:
        suffix = Path(filename or "").suffix
        descriptor, name = tempfile.mkstemp(
            prefix="upload-", suffix=suffix if _SUFFIX.match(suffix) else "", dir=self.directory
        )
        self.file = os.fdopen(descriptor, "wb")
        self.upload.path = Path(name)
        self.upload.filename = filename

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self.part.name == FILE_FIELD:
            self.upload.size_bytes += len(chunk)
            if self.upload.size_bytes > self.limit_bytes:
                raise UploadTooLargeError(self.limit_bytes)
            self.pending += chunk
        elif not self.part.skip:
            self.part.value += chunk
            if len(self.part.value) > _MAX_FIELD_BYTES:
                raise InvalidFieldError(
                    self.part.name or "",
                    f"Field '{self.part.name}' is longer than {_MAX_FIELD_BYTES} bytes.",
                )

    def on_part_end(self) -> None:
        if self.part.name is None or self.part.name == FILE_FIELD or self.part.skip:
            return
        value = bytes(self.part.value).decode("utf-8", "replace")
        self.upload.fields.setdefault(self.part.name, []).append(value)

    async def flush(self, *, force: bool = False) -> None:
        if (
            self.file is None
            or not self.pending
            or (len(self.pending) < _FLUSH_BYTES and not force)
        ):
            return
        data = bytes(self.pending)
        self.pending.clear()
        await anyio.to_thread.run_sync(self.file.write, data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise InvalidFieldError(
            FILE_FIELD, "Send the audio as multipart/form-data with a 'file' field."
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidFieldError(FILE_FIELD, "The multipart body has no boundary.")
    return boundary


def _check_declared_length(request: Request, limit_bytes: int) -> None:
    declared = request.headers.get("content-length")
    if (
        declared is not None
        and declared.isdigit()
        and int(declared) > limit_bytes + FIELDS_ALLOWANCE_BYTES
    ):
        raise UploadTooLargeError(limit_bytes)


async def receive_upload(request: Request, directory: Path, limit_bytes: int) -> Upload:
    """Read the request body into one temporary file under `directory` plus the form fields.

    Stops reading the moment the file exceeds `limit_bytes` (or a declared Content-Length
    already does); on any failure the partial file is deleted before the error propagates.

    Raises:
        UploadTooLargeError: the upload is over the limit.
        InvalidFieldError: not multipart, malformed, or no 'file' part.
        starlette.requests.ClientDisconnect: the client went away mid-upload.
    """
    _check_declared_length(request, limit_bytes)
    receiver = _Receiver(directory, limit_bytes)
    parser = MultipartParser(
        _boundary(request),
        receiver.callbacks(),  # type: ignore[arg-type]  # a plain dict of the TypedDict's keys
    )
    body_bytes = 0
    try:
        async for chunk in request.stream():
            body_bytes += len(chunk)
            if body_bytes > limit_bytes + FIELDS_ALLOWANCE_BYTES:
                raise UploadTooLargeError(limit_bytes)
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise InvalidFieldError(FILE_FIELD, f"Malformed multipart body: {exc}") from exc
            await receiver.flush()
        try:
            parser.finalize()
        except MultipartParseError as exc:
            raise InvalidFieldError(FILE_FIELD, f"Malformed multipart body: {exc}") from exc
        await receiver.flush(force=True)
    except BaseException:
        receiver.close()
        receiver.upload.discard()
        raise
    receiver.close()
    upload = receiver.upload
    if upload.path is None:
        raise InvalidFieldError(FILE_FIELD, "The 'file' field is required.")
    return upload


class CloseUnreadBodyMiddleware:
    """Answer `Connection: close` when a response starts before the request body was read.

    Otherwise uvicorn keeps the connection and drains (reads and discards) the rest of the
    body, so a refused 10 GB upload (413, 401, 503) would still be received to its end.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        body_pending = headers.get(b"content-length", b"0") != b"0" or (
            b"transfer-encoding" in headers
        )

        async def watched_receive() -> Message:
            nonlocal body_pending
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and body_pending:
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"connection", b"close")],
                }
            await send(message)

        await self.app(scope, watched_receive, closing_send)
