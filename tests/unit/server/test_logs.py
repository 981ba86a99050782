"""Log lines a person can read and a collector can parse: formats, levels, handler set-up."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gigaam_api.server.logs import (
    SERVER_LOGGERS,
    JsonFormatter,
    RequestLog,
    configure_logging,
    request_level,
    request_line,
)


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("gigaam_api.test", logging.WARNING, __file__, 1, message, args, None)
    record.created = 1_767_225_600.25  # 2026-01-01T00:00:00.250 UTC
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_line_has_utc_time_level_logger_message_then_the_fields() -> None:
    record = _record("loaded %s", "v3_ctc", fields={"status": 200, "model": "v3_ctc"})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2026-01-01T00:00:00.250+00:00",
        "level": "WARNING",
        "logger": "gigaam_api.test",
        "msg": "loaded v3_ctc",
        "status": 200,
        "model": "v3_ctc",
    }
    assert list(json.loads(line))[:4] == ["ts", "level", "logger", "msg"]


def test_json_fields_never_replace_the_core_keys_and_odd_values_become_text() -> None:
    record = _record(
        "привет", fields={"msg": "spoof", "level": "DEBUG", "dir": Path("/data/models")}
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "привет"
    assert line["level"] == "WARNING"
    assert line["dir"] == "/data/models"
    assert "привет" in JsonFormatter().format(record)  # not \u-escaped


def test_json_line_carries_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["exc"].startswith("Traceback")
    assert line["exc"].endswith("ValueError: boom")


@pytest.mark.parametrize(
    ("path", "status", "level"),
    [
        ("/health", 200, logging.DEBUG),
        ("/health", 503, logging.DEBUG),  # loading: expected, polled every 30 s
        ("/v1/audio/transcriptions", 200, logging.INFO),
        ("/v1/audio/transcriptions", 400, logging.INFO),
        ("/v1/audio/transcriptions", 499, logging.INFO),
        ("/v1/audio/transcriptions", 503, logging.WARNING),
        ("/v1/audio/transcriptions", 500, logging.ERROR),
        ("/v1/models", 502, logging.ERROR),
    ],
)
def test_request_level(path: str, status: int, level: int) -> None:
    assert request_level(path, status) == level


def test_request_line_shows_what_was_measured_and_nothing_unset() -> None:
    entry = RequestLog("abc123", model="v3_ctc", response_format="srt", audio_s=42.0)
    entry.processing_s = 3.15
    fields = entry.fields("POST", "/v1/audio/transcriptions", 200, 3.5004)
    assert request_line(fields) == (
        "req=abc123 POST /v1/audio/transcriptions 200 3.500s audio_s=42.0 processing_s=3.15 "
        "rtf=0.075 model=v3_ctc format=srt"
    )
    bare = RequestLog("def456").fields("GET", "/health", 503, 0.0012)
    assert request_line(bare) == "req=def456 GET /health 503 0.001s"
    assert bare["audio_s"] is None and bare["rtf"] is None


@pytest.fixture
def restored_loggers() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in (*SERVER_LOGGERS, "uvicorn.error", "")]
    saved = [(lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    yield
    for lg, (handlers, level, propagate) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.mark.usefixtures("restored_loggers")
def test_configure_logging_twice_leaves_one_handler_and_takes_over_uvicorn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.getLogger("uvicorn").addHandler(logging.StreamHandler(sys.stdout))
    logging.getLogger("uvicorn.error").setLevel(logging.NOTSET)  # uvicorn.run sets it in `serve`
    configure_logging("INFO", as_json=False)
    configure_logging("DEBUG", as_json=True)

    for name in SERVER_LOGGERS:
        target = logging.getLogger(name)
        # pytest adds its capturing handlers to non-propagating loggers; only ours writes to stderr
        streams = [getattr(handler, "stream", None) for handler in target.handlers]
        assert streams.count(sys.stderr) == 1, name
        assert sys.stdout not in streams, name
        assert target.level == logging.DEBUG
        assert not target.propagate
    logging.getLogger("uvicorn.error").info("Uvicorn running on %s", "http://0.0.0.0:8000")
    logging.getLogger("gigaam_api.bootstrap").debug("ready")

    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert [(line["logger"], line["msg"]) for line in lines] == [
        ("uvicorn.error", "Uvicorn running on http://0.0.0.0:8000"),
        ("gigaam_api.bootstrap", "ready"),
    ]


@pytest.mark.usefixtures("restored_loggers")
def test_text_lines_name_time_level_and_logger(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", as_json=False)
    logging.getLogger("gigaam_api.weights").info("v3_ctc.ckpt: %d%%", 40)
    logging.getLogger("gigaam_api.weights").debug("hidden at INFO")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.endswith(" INFO    gigaam_api.weights: v3_ctc.ckpt: 40%")


@pytest.mark.usefixtures("restored_loggers")
def test_other_libraries_warnings_come_out_as_json_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", as_json=True)
    configure_logging("DEBUG", as_json=True)  # again: still one line per record
    library = logging.getLogger("python_multipart.multipart")
    library.warning("Skipping data after last boundary")
    library.info("below WARNING: a library's chatter stays out")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"]) == ("WARNING", "python_multipart.multipart")
    assert record["msg"] == "Skipping data after last boundary"
