"""The one table from exceptions to OpenAI error bodies, statuses and headers."""

from __future__ import annotations

import pytest

from gigaam_api.errors import (
    AudioDecodeError,
    AudioToolMissingError,
    AudioTooLongError,
    CheckpointError,
    JobNotDoneError,
    JobNotFoundError,
    ModelLoadFailedError,
    ModelLoadingError,
    QueueFullError,
    TranscriptionCancelledError,
)
from gigaam_api.server.errors import (
    AuthError,
    ErrorInfo,
    InvalidFieldError,
    ModelNotAcceptedError,
    ModelNotFoundError,
    UploadTimeoutError,
    UploadTooLargeError,
    describe,
    error_body,
)


@pytest.mark.parametrize(
    ("exc", "status", "error_type", "param", "code"),
    [
        (AudioDecodeError("bad"), 400, "invalid_request_error", "file", "invalid_audio"),
        (AudioTooLongError(100.0, 60.0), 400, "invalid_request_error", "file", "audio_too_long"),
        (
            InvalidFieldError("stream", "no"),
            400,
            "invalid_request_error",
            "stream",
            "invalid_value",
        ),
        (
            ModelNotAcceptedError("x", ["v3_ctc"]),
            400,
            "invalid_request_error",
            "model",
            "model_not_found",
        ),
        (AuthError("who?"), 401, "invalid_request_error", None, "invalid_api_key"),
        (ModelNotFoundError("x"), 404, "invalid_request_error", "model", "model_not_found"),
        (JobNotFoundError("gone"), 404, "invalid_request_error", None, "job_not_found"),
        (UploadTimeoutError("slow"), 408, "invalid_request_error", "file", "upload_timeout"),
        (JobNotDoneError("wait"), 409, "invalid_request_error", None, "job_not_done"),
        (TranscriptionCancelledError("x"), 409, "invalid_request_error", None, "job_cancelled"),
        (UploadTooLargeError(1024 * 1024), 413, "invalid_request_error", "file", "file_too_large"),
        (AudioToolMissingError("no ffmpeg"), 500, "server_error", None, "audio_tool_missing"),
        (CheckpointError("broken"), 500, "server_error", None, None),
        (RuntimeError("secret internals"), 500, "server_error", None, None),
        (QueueFullError("busy", retry_after_s=5), 503, "server_error", None, "queue_full"),
        (ModelLoadingError("wait", retry_after_s=10), 503, "server_error", None, "model_loading"),
        (ModelLoadFailedError("dead"), 503, "server_error", None, "model_unavailable"),
    ],
)
def test_status_and_fields(
    exc: BaseException, status: int, error_type: str, param: str | None, code: str | None
) -> None:
    info = describe(exc)
    assert (info.status_code, info.error_type, info.param, info.code) == (
        status,
        error_type,
        param,
        code,
    )
    assert info.message


def test_unexpected_errors_do_not_leak_their_message() -> None:
    assert "secret" not in describe(RuntimeError("secret internals")).message


def test_retry_after_and_should_retry_headers() -> None:
    busy = describe(QueueFullError("busy", retry_after_s=5))
    assert dict(busy.headers) == {"Retry-After": "5"}
    assert dict(describe(ModelLoadFailedError("dead")).headers) == {"x-should-retry": "false"}
    assert dict(describe(AuthError("x")).headers) == {"WWW-Authenticate": "Bearer"}
    # a cancelled or unfinished job is not worth a retry (openai-python retries 409)
    assert dict(describe(TranscriptionCancelledError("x")).headers) == {"x-should-retry": "false"}
    assert dict(describe(JobNotDoneError("x")).headers) == {"x-should-retry": "false"}
    assert describe(CheckpointError("x")).headers == ()


def test_the_most_specific_rule_wins() -> None:
    class OddAudio(AudioDecodeError):
        pass

    assert describe(OddAudio("odd")).code == "invalid_audio"  # inherits its parent's rule


def test_body_has_exactly_the_four_openai_keys() -> None:
    body = error_body(ErrorInfo(400, "invalid_request_error", "m", "file", None))
    assert body == {
        "error": {"message": "m", "type": "invalid_request_error", "param": "file", "code": None}
    }
