"""One log record per request with the fields operators need; JSON lines when LOG_JSON is on."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigaam_api.server.logs import JsonFormatter
from tests.fixtures.audio import wav_seconds
from tests.fixtures.server import RunningServer, collect_logs, until

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
    server: RunningServer, records: list[logging.LogRecord], request_id: str
) -> list[logging.LogRecord]:
    """Every record of the request (the line is written just after the response is sent): once
    it is there, a later request's record is awaited too, so a duplicate has had its chance."""
    until(lambda: _with_id(records, request_id), f"the record of request {request_id}")
    marker = httpx.get(f"{server.base_url}/v1/models").headers["x-request-id"]
    until(lambda: _with_id(records, marker), "the record of a later request")
    return _with_id(records, request_id)


def _with_id(records: list[logging.LogRecord], request_id: str) -> list[logging.LogRecord]:
    return [record for record in list(records) if _fields(record)["request_id"] == request_id]


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
    mine = _records_of(api_server, request_records, request_id)
    assert len(mine) == 1
    fields = _fields(mine[0])
    assert set(fields) == FIELDS
    assert fields["status"] == 200
    assert fields["model"] == "v3_ctc"
    assert fields["format"] == "srt"
    assert fields["audio_s"] == pytest.approx(wav_seconds(speech_wav_short), abs=0.01)
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
    mine = _records_of(api_server, request_records, response.headers["x-request-id"])
    assert [_fields(r)["status"] for r in mine] == [400]
    assert _fields(mine[0])["path"] == "/v1/audio/transcriptions"
