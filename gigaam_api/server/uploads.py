"""A multipart upload streamed straight to one temporary file, under a size cap and deadlines.

An oversized body is cut off at MAX_UPLOAD_MB, a stalled one after UPLOAD_IDLE_TIMEOUT_S, a
crawling one below UPLOAD_MIN_RATE_KIB_S, one the disk has no room for (a declared length is
checked before reading, the free space after every write); the partial file is deleted at once.
The file's
SHA-256 is computed as it is written (it names the job). Starlette's own form parser spools
every file without a total limit, so the body is parsed here with python-multipart's streaming
parser. Knows nothing of audio, forms' meaning or the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio.to_thread
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gigaam_api.server.disk import DiskRoom, is_out_of_space, out_of_space_error
from gigaam_api.server.errors import InvalidFieldError, UploadTimeoutError, UploadTooLargeError

FILE_FIELD = "file"
FIELDS_ALLOWANCE_BYTES = 1024 * 1024
"""Room for the non-file fields and part headers on top of the file's own limit."""
_MAX_FIELD_BYTES = 64 * 1024
_MAX_PARTS = 1000
_FLUSH_BYTES = 1024 * 1024
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
RATE_CHECK_AFTER_S = 10.0
"""The mean-rate floor applies from this far into an upload (a start-up stall is forgiven)."""


@dataclass(frozen=True)
class UploadLimits:
    """How big and how slow an upload may be; 0 turns a deadline off."""

    max_bytes: int
    idle_timeout_s: float = 0.0
    min_rate_bytes_s: float = 0.0


class UploadPace:
    """The deadlines of one upload, on an injectable clock (pure: unit-testable without time)."""

    def __init__(self, limits: UploadLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._started_s = clock()
        self._bytes = 0

    def wait_s(self) -> float | None:
        """How long to wait for the next piece of the body (None: for ever)."""
        return self._limits.idle_timeout_s or None

    def stalled(self) -> UploadTimeoutError:
        return UploadTimeoutError(
            f"The upload stalled: no data for {self._limits.idle_timeout_s:g} s "
            "(UPLOAD_IDLE_TIMEOUT_S)."
        )

    def received(self, size_bytes: int) -> None:
        """Count a piece of the body.

        Raises:
            UploadTimeoutError: past RATE_CHECK_AFTER_S, the mean rate is under the floor.
        """
        self._bytes += size_bytes
        floor = self._limits.min_rate_bytes_s
        elapsed_s = self._clock() - self._started_s
        if floor and elapsed_s >= RATE_CHECK_AFTER_S and self._bytes / elapsed_s < floor:
            raise UploadTimeoutError(
                f"The upload is too slow: {self._bytes / elapsed_s / 1024:.1f} KiB/s on average, "
                f"under the {floor / 1024:g} KiB/s floor (UPLOAD_MIN_RATE_KIB_S)."
            )


@dataclass
class Upload:
    """The stored file part and the other fields of one request; the caller owns the file."""

    path: Path | None = None
    filename: str | None = None
    size_bytes: int = 0
    sha256: str = ""
    """Hex SHA-256 of the stored file's bytes."""
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

    def __init__(self, directory: Path, limit_bytes: int, room: DiskRoom | None) -> None:
        self.directory = directory
        self.limit_bytes = limit_bytes
        self.room = room
        self.upload = Upload()
        self.part = _PartState()
        self.parts = 0
        self.pending = bytearray()
        self.file: BinaryIO | None = None
        self.digest = hashlib.sha256()

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
        await anyio.to_thread.run_sync(self._store, self.file, data)

    def _store(self, file: BinaryIO, data: bytes) -> None:
        self.digest.update(data)
        try:
            file.write(data)
            file.flush()  # nothing left in a buffer for close() to fail on
        except OSError as exc:
            if is_out_of_space(exc):
                raise out_of_space_error() from exc
            raise
        if self.room is not None:
            self.room.ensure()

    def close(self) -> None:
        file, self.file = self.file, None
        if file is not None:
            with contextlib.suppress(OSError):  # flushed already; only a failed write leaves data
                file.close()


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


def _check_declared_length(request: Request, limit_bytes: int) -> int:
    """The body's declared length (0 when not declared), refused at once when over the limit."""
    declared = request.headers.get("content-length", "")
    if not (declared.isascii() and declared.isdigit()):
        return 0
    if int(declared) > limit_bytes + FIELDS_ALLOWANCE_BYTES:
        raise UploadTooLargeError(limit_bytes)
    return int(declared)


async def _paced(request: Request, pace: UploadPace) -> AsyncIterator[bytes]:
    """The body's pieces, each awaited no longer than the idle timeout allows."""
    stream = request.stream()
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(anext(stream), pace.wait_s())
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise pace.stalled() from None
            pace.received(len(chunk))
            yield chunk
    finally:
        await stream.aclose()


async def receive_upload(
    request: Request, directory: Path, limits: UploadLimits, room: DiskRoom | None = None
) -> Upload:
    """Read the request body into one temporary file under `directory` plus the form fields.

    Stops reading the moment the file exceeds the size limit (or a declared Content-Length
    already does), stalls, crawls or would leave the disk under `room`'s margin; on any failure
    the partial file is deleted before the error propagates.

    Raises:
        UploadTooLargeError: the upload is over the limit.
        UploadTimeoutError: the upload stalled or is too slow.
        InsufficientStorageError: the disk has no room for it (before reading when declared).
        InvalidFieldError: not multipart, malformed, or no 'file' part.
        starlette.requests.ClientDisconnect: the client went away mid-upload.
    """
    limit_bytes = limits.max_bytes
    declared_bytes = _check_declared_length(request, limit_bytes)
    if room is not None:
        room.ensure(declared_bytes)
    receiver = _Receiver(directory, limit_bytes, room)
    parser = MultipartParser(
        _boundary(request),
        receiver.callbacks(),  # type: ignore[arg-type]  # a plain dict of the TypedDict's keys
    )
    body_bytes = 0
    try:
        async for chunk in _paced(request, UploadPace(limits)):
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
    upload.sha256 = receiver.digest.hexdigest()
    return upload


SMALL_BODY_BYTES = 1 << 20
"""A refused body of at most this declared size, none of it read yet, is drained, not cut off."""


class CloseUnreadBodyMiddleware:
    """Answer `Connection: close` when a response starts before the request body was read.

    Otherwise uvicorn keeps the connection and drains (reads and discards) the rest of the
    body, so a refused 10 GB upload (413, 401, 503) would still be received to its end. A small
    declared body that was not touched yet is the exception: draining it costs little, while
    closing on a browser still sending it makes the browser see a reset instead of the answer
    ("cannot reach the server" instead of "busy, retry in 5 s").
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
        declared = headers.get(b"content-length", b"")
        small = (
            b"transfer-encoding" not in headers
            and declared.isdigit()
            and int(declared) <= SMALL_BODY_BYTES
        )
        touched = False

        async def watched_receive() -> Message:
            nonlocal body_pending, touched
            touched = True
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_pending = False
            return message

        async def closing_send(message: Message) -> None:
            drain = small and not touched
            if message["type"] == "http.response.start" and body_pending and not drain:
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"connection", b"close")],
                }
            await send(message)

        await self.app(scope, watched_receive, closing_send)
