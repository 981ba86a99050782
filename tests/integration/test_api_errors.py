"""Every error the API answers, asserted on status, headers and the OpenAI-shaped body."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigaam_api.bootstrap import build_transcriber
from gigaam_api.settings import Settings
from gigaam_api.types import DownloadProgress, Transcriber
from tests.fixtures.server import STRICT_API_KEY, RunningServer, ServerFactory, until

ERROR_KEYS = {"message", "type", "param", "code"}


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


def _post(
    server: RunningServer,
    audio: Path | bytes,
    data: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = audio.read_bytes() if isinstance(audio, Path) else audio
    name = audio.name if isinstance(audio, Path) else "audio.wav"
    return httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (name, content, "application/octet-stream")},
        data=data or {"model": "whisper-1"},
        headers=headers,
        timeout=60,
    )


@pytest.mark.parametrize("name", ["corrupt", "empty", "text", "video_no_audio", "wav_header_only"])
def test_bad_audio_is_a_400_on_file(
    api_server: RunningServer, bad_inputs: dict[str, Path], name: str
) -> None:
    error = _error(_post(api_server, bad_inputs[name]), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "file"
    assert error["code"] == "invalid_audio"
    api_server.wait_idle()
    assert api_server.upload_files() == []


def test_too_long_audio_is_a_400(server_factory: ServerFactory, speech_wav_short: Path) -> None:
    server = server_factory(max_audio_seconds=2.0)
    error = _error(_post(server, speech_wav_short), 400)
    assert error["code"] == "audio_too_long"
    assert error["param"] == "file"
    assert "limit of 2 s" in error["message"]


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"response_format": "docx"}, "response_format"),
        ({"timestamp_granularities[]": "sentence"}, "timestamp_granularities"),
        ({"stream": "maybe"}, "stream"),
        ({"temperature": "warm"}, "temperature"),
        ({"chunking_strategy": "fast"}, "chunking_strategy"),
        (
            {"chunking_strategy": '{"type":"server_vad","threshold":2}'},
            "chunking_strategy.threshold",
        ),
        (
            {"chunking_strategy[type]": "server_vad", "chunking_strategy[x]": "1"},
            "chunking_strategy",
        ),
        ({"include[]": "everything"}, "include"),
        ({"model": "whisper-2"}, "model"),
    ],
)
def test_invalid_fields_are_a_400_naming_the_field(
    api_server: RunningServer, speech_wav_short: Path, data: dict[str, str], param: str
) -> None:
    error = _error(_post(api_server, speech_wav_short, data), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert api_server.upload_files() == []


def test_missing_file_is_a_400(api_server: RunningServer) -> None:
    response = httpx.post(
        f"{api_server.base_url}/v1/audio/transcriptions",
        files={"other": ("x.txt", b"hello", "text/plain")},
        data={"model": "whisper-1"},
    )
    error = _error(response, 400)
    assert error["param"] == "file"
    assert "required" in error["message"]


def test_non_multipart_body_is_a_400(api_server: RunningServer) -> None:
    response = httpx.post(
        f"{api_server.base_url}/v1/audio/transcriptions", json={"model": "whisper-1"}
    )
    assert _error(response, 400)["param"] == "file"


def test_malformed_multipart_is_a_400(api_server: RunningServer) -> None:
    response = httpx.post(
        f"{api_server.base_url}/v1/audio/transcriptions",
        content=b"this is not multipart at all",
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert _error(response, 400)["param"] == "file"


def test_unknown_route_and_method_are_openai_shaped(api_server: RunningServer) -> None:
    assert _error(httpx.get(f"{api_server.base_url}/v1/nothing"), 404)["type"] == (
        "invalid_request_error"
    )
    _error(httpx.get(f"{api_server.base_url}/v1/audio/transcriptions"), 405)


def test_docs_and_openapi_are_served(api_server: RunningServer) -> None:
    assert httpx.get(f"{api_server.base_url}/docs").status_code == 200
    schema = httpx.get(f"{api_server.base_url}/openapi.json").json()
    body = schema["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]
    assert "file" in body["content"]["multipart/form-data"]["schema"]["properties"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {STRICT_API_KEY}"}],
)
def test_missing_or_wrong_key_is_a_401(
    strict_server: RunningServer, speech_wav_short: Path, headers: dict[str, str]
) -> None:
    response = _post(strict_server, speech_wav_short, headers=headers)
    error = _error(response, 401)
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert response.headers["www-authenticate"] == "Bearer"
    # a small body refused unread is drained, not cut: a browser still sending gets the answer
    assert response.headers.get("connection") != "close"
    assert _error(httpx.get(f"{strict_server.base_url}/v1/models", headers=headers), 401)


def test_right_key_passes_and_health_stays_public(
    strict_server: RunningServer, speech_wav_short: Path
) -> None:
    auth = {"Authorization": f"Bearer {STRICT_API_KEY}"}
    assert _post(strict_server, speech_wav_short, headers=auth).status_code == 200
    assert httpx.get(f"{strict_server.base_url}/health").status_code == 200


def test_declared_oversize_upload_is_a_413_before_reading(strict_server: RunningServer) -> None:
    auth = {"Authorization": f"Bearer {STRICT_API_KEY}"}
    response = _post(strict_server, b"\0" * (3 * 1024 * 1024), headers=auth)
    error = _error(response, 413)
    assert error["code"] == "file_too_large"
    assert error["param"] == "file"
    assert response.headers["connection"] == "close"  # too big to drain
    assert strict_server.upload_files() == []
    strict_server.wait_idle()


def test_endless_chunked_upload_is_cut_at_the_limit(strict_server: RunningServer) -> None:
    sent = 0
    head = (
        b'--cut\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n"
    )

    def endless() -> Iterator[bytes]:
        nonlocal sent
        yield head
        block = b"\0" * 65536
        while sent < 200 * 1024 * 1024:  # stands in for 10 GB; the server stops at 1 MiB
            sent += len(block)
            yield block

    response = httpx.post(
        f"{strict_server.base_url}/v1/audio/transcriptions",
        content=endless(),
        headers={
            "Authorization": f"Bearer {STRICT_API_KEY}",
            "content-type": "multipart/form-data; boundary=cut",
        },
        timeout=60,
    )
    assert _error(response, 413)["code"] == "file_too_large"
    assert sent < 200 * 1024 * 1024
    strict_server.wait_idle()
    assert strict_server.upload_files() == []


def test_503_with_progress_while_loading_then_ready(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    release = threading.Event()

    def slow_factory(
        settings: Settings, on_progress: Callable[[DownloadProgress], None]
    ) -> Transcriber:
        on_progress(DownloadProgress("v3_ctc.ckpt", 25, 100))
        release.wait(60)
        return build_transcriber(settings, on_progress)

    server = server_factory(transcriber_factory=slow_factory, wait_ready=False)
    # the loader thread reports its progress when it gets there: wait for it, then look
    until(
        lambda: httpx.get(f"{server.base_url}/health").json().get("progress") is not None,
        "the loader to report its progress",
    )
    health = httpx.get(f"{server.base_url}/health")
    assert health.status_code == 503
    assert health.json()["status"] == "loading"
    assert health.json()["loaded"] is False
    assert health.json()["progress"] == {
        "file": "v3_ctc.ckpt",
        "done_bytes": 25,
        "total_bytes": 100,
        "percent": 25.0,
    }
    response = _post(server, speech_wav_short)
    error = _error(response, 503)
    assert error["code"] == "model_loading"
    assert error["type"] == "server_error"
    assert int(response.headers["retry-after"]) > 0
    release.set()
    until(lambda: httpx.get(f"{server.base_url}/health").status_code == 200, "the model loaded")
    assert httpx.get(f"{server.base_url}/health").json()["loaded"] is True
    assert _post(server, speech_wav_short).status_code == 200


def test_load_failure_is_reported_by_health(
    server_factory: ServerFactory, tmp_path: Path, speech_wav_short: Path
) -> None:
    server = server_factory(model=str(tmp_path / "missing.ckpt"), wait_ready=False)
    until(
        lambda: httpx.get(f"{server.base_url}/health").json()["status"] != "loading",
        "the load to fail",
    )
    health = httpx.get(f"{server.base_url}/health")
    assert health.status_code == 503
    assert health.json()["status"] == "error"
    assert "missing.ckpt" in health.json()["error"]
    response = _post(server, speech_wav_short)
    error = _error(response, 503)
    assert error["code"] == "model_unavailable"
    assert response.headers["x-should-retry"] == "false"
