"""A client of a gigaam-api server's jobs API, standard library only: the CLI's `--server` mode.

The upload streams from disk as it is sent (a multipart body built on the fly), so any size works
in constant memory; status and result are plain GETs. A failure comes back as RemoteError
carrying the server's OpenAI error message. Knows the HTTP API only, not the server's code.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

JOBS_PATH = "/v1/audio/transcriptions/jobs"
_READ_BYTES = 1024 * 1024
_RUNNING = ("queued", "running")


class RemoteError(Exception):
    """The server refused a request or the job failed; the message says why."""


def _multipart(path: Path, fields: dict[str, str], boundary: str) -> tuple[bytes, bytes, int]:
    """The bytes before and after the file's, and the whole body's length."""
    head = b""
    for name, value in fields.items():
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    filename = path.name.replace('"', "_")
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head, tail, len(head) + path.stat().st_size + len(tail)


def _stream(path: Path, head: bytes, tail: bytes) -> Iterator[bytes]:
    yield head
    with path.open("rb") as audio:
        while chunk := audio.read(_READ_BYTES):
            yield chunk
    yield tail


class JobsClient:
    """The jobs API of the server at `base_url` (with or without the trailing `/v1`)."""

    def __init__(self, base_url: str, api_key: str = "", timeout_s: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._api_key = api_key
        self._timeout_s = timeout_s

    def _request(
        self,
        method: str,
        path: str,
        *,
        data: Iterator[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers or {}
        )
        if self._api_key:
            request.add_header("Authorization", f"Bearer {self._api_key}")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            raise RemoteError(f"{exc.code}: {_error_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RemoteError(f"cannot reach {self.base_url}: {reason}") from None

    def submit(self, path: Path, fields: dict[str, str]) -> dict[str, Any]:
        """Upload `path` as a new job (or find the identical one); its status object."""
        boundary = f"gigaam-{secrets.token_hex(16)}"
        head, tail, length = _multipart(path, fields, boundary)
        body = self._request(
            "POST",
            JOBS_PATH,
            data=_stream(path, head, tail),
            headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Content-Length": str(length),
            },
        )
        return _json_object(body)

    def status(self, job_id: str) -> dict[str, Any]:
        return _json_object(self._request("GET", f"{JOBS_PATH}/{urllib.parse.quote(job_id)}"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return _json_object(self._request("DELETE", f"{JOBS_PATH}/{urllib.parse.quote(job_id)}"))

    def result(self, job_id: str, response_format: str, granularities: Sequence[str]) -> str:
        """The finished job's body in `response_format`, exactly as the server renders it."""
        query = urllib.parse.urlencode(
            [
                ("response_format", response_format),
                *(("timestamp_granularities[]", g) for g in granularities),
            ]
        )
        path = f"{JOBS_PATH}/{urllib.parse.quote(job_id)}/result?{query}"
        return self._request("GET", path).decode("utf-8")


def _json_object(body: bytes) -> dict[str, Any]:
    parsed = json.loads(body)
    if not isinstance(parsed, dict):
        raise RemoteError("the server sent something other than a JSON object")
    return parsed


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace").strip() or "no details"


def transcribe_remote(
    client: JobsClient,
    path: Path,
    response_format: str,
    fields: dict[str, str],
    on_status: Callable[[dict[str, Any]], None],
    poll_s: float = 0.5,
) -> str:
    """Submit `path`, report each status until the job ends, then fetch the result.

    Ctrl-C cancels the job on the server before it propagates.

    Raises:
        RemoteError: a refusal, or the job failed or was cancelled.
    """
    status = client.submit(path, fields)
    job_id = str(status["id"])
    try:
        on_status(status)
        while status["status"] in _RUNNING:
            time.sleep(poll_s)
            status = client.status(job_id)
            on_status(status)
    except KeyboardInterrupt:
        client.cancel(job_id)
        raise
    if status["status"] != "done":
        error = status.get("error") or {}
        raise RemoteError(f"the job {status['status']}: {error.get('message', 'no details')}")
    granularities = ("segment", "word") if response_format == "verbose_json" else ()
    return client.result(job_id, response_format, granularities)
