"""One log record per request with the fields operators need; JSON lines when LOG_JSON is on."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigaam_api.server.logs import JsonFormatter
from tests.fixtures.server import RunningServer, collect_logs

FIELDS = {
    "request_id",
    "method",
    "path",
    "status",
    "audio_s",
    "processing_s",
    "rtf",
    "model",
    "format",
    "elapsed_s",
}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    assert isinstance(fields, dict)
    return fields


def _records_of(
    records: list[logging.LogRecord], request_id: str, timeout_s: float = 10.0
) -> list[logging.LogRecord]:
    """The request's log records; the line is written just after the response is sent."""
    deadline = time.monotonic() + timeout_s
    while True:
        mine = [r for r in records if _fields(r)["request_id"] == request_id]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.02)


@pytest.fixture
def request_records() -> Iterator[list[logging.LogRecord]]:
    with collect_logs("gigaam_api.requests") as records:
        yield records


def test_one_line_per_transcription_with_rtf(
    api_server: RunningServer, speech_wav_short: Path, request_records: list[logging.LogRecord]
) -> None:
    response = httpx.post(
        f"{api_server.base_url}/v1/audio/transcriptions",
        files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"model": "whisper-1", "response_format": "srt"},
        timeout=60,
    )
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    mine = _records_of(request_records, request_id)
    assert len(mine) == 1
    fields = _fields(mine[0])
    assert set(fields) == FIELDS
    assert fields["status"] == 200
    assert fields["model"] == "v3_ctc"
    assert fields["format"] == "srt"
    assert 7.0 < fields["audio_s"] < 9.0
    assert fields["processing_s"] > 0
    assert fields["rtf"] == pytest.approx(fields["processing_s"] / fields["audio_s"], rel=0.01)

    line = json.loads(JsonFormatter().format(mine[0]))
    assert line["level"] == "INFO"
    assert line["status"] == 200
    assert line["request_id"] == response.headers["x-request-id"]


def test_errors_are_logged_with_their_status(
    api_server: RunningServer, request_records: list[logging.LogRecord]
) -> None:
    response = httpx.post(
        f"{api_server.base_url}/v1/audio/transcriptions",
        files={"file": ("a.wav", b"x", "audio/wav")},
        data={"model": "nope"},
    )
    assert response.status_code == 400
    mine = _records_of(request_records, response.headers["x-request-id"])
    assert [_fields(r)["status"] for r in mine] == [400]
    assert len(request_records) == 1
