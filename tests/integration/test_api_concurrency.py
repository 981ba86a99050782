"""The queue under a burst, and clients that leave mid-request (sync and streaming)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.audio import child_processes, stitch
from tests.fixtures.server import RunningServer, ServerFactory

_WAIT_S = 60.0


@pytest.fixture(scope="module")
def speech_five_minutes(audio_dir: Path, speech_long: Path) -> Path:
    """speech_long four times (about 5 min): long enough to be mid-run when the client leaves."""
    return stitch([speech_long] * 4, audio_dir / "speech_five_minutes.wav")


def _request_bytes(server: RunningServer, audio: Path, data: dict[str, str]) -> bytes:
    request = httpx.Request(
        "POST",
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (audio.name, audio.read_bytes(), "audio/wav")},
        data=data,
    )
    body = request.read()
    host = server.base_url.removeprefix("http://")
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: {request.headers['content-type']}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _send_raw(server: RunningServer, payload: bytes) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(payload)
    return sock


def _until(condition: object, what: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not condition():  # type: ignore[operator]  # a zero-argument callable
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _short_post(server: RunningServer, audio: Path) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (audio.name, audio.read_bytes(), "audio/wav")},
        data={"model": "whisper-1"},
        timeout=_WAIT_S,
    )


def test_burst_of_max_queue_plus_three_rejects_exactly_the_extra(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    max_queue = 3
    server = server_factory(max_queue=max_queue)
    request = httpx.Request(
        "POST",
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"model": "whisper-1"},
    )
    body = request.read()
    gate = threading.Event()
    statuses: list[int] = []
    retry_after: list[str] = []
    lock = threading.Lock()

    def gated_body() -> Iterator[bytes]:
        yield body[:2048]
        gate.wait(_WAIT_S)
        yield body[2048:]

    def send(gated: bool) -> None:
        response = httpx.post(
            str(request.url),
            content=gated_body() if gated else body,
            headers={"content-type": request.headers["content-type"]},
            timeout=_WAIT_S,
        )
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 503:
                retry_after.append(response.headers["retry-after"])
                assert response.json()["error"]["code"] == "queue_full"

    held = [threading.Thread(target=send, args=(True,)) for _ in range(max_queue)]
    for thread in held:
        thread.start()
    _until(lambda: server.runtime.worker.active == max_queue, "the queue to fill")
    extra = [threading.Thread(target=send, args=(False,)) for _ in range(3)]
    for thread in extra:
        thread.start()
    for thread in extra:
        thread.join(_WAIT_S)
    assert sorted(statuses) == [503, 503, 503]
    gate.set()
    for thread in held:
        thread.join(_WAIT_S)
    assert sorted(statuses) == [200] * max_queue + [503] * 3
    assert all(int(value) > 0 for value in retry_after)
    server.wait_idle()
    assert server.upload_files() == []


def test_sync_client_disconnect_cancels_and_frees_the_worker(
    api_server: RunningServer, speech_five_minutes: Path, speech_wav_short: Path
) -> None:
    worker = api_server.runtime.worker
    cancelled_before = worker.cancelled
    long_request = _send_raw(api_server, _request_bytes(api_server, speech_five_minutes, {}))
    _until(lambda: worker.running, "the long job to start")
    # a short request waits behind it, and a second long one that will also leave
    waiting = _send_raw(api_server, _request_bytes(api_server, speech_five_minutes, {}))
    _until(lambda: worker.active == 2, "the second request to queue")
    waiting.close()
    long_request.close()
    short = _short_post(api_server, speech_wav_short)
    assert short.status_code == 200
    assert "text" in short.json()
    api_server.wait_idle()
    assert worker.cancelled == cancelled_before + 2
    assert child_processes("ffmpeg") == []
    assert api_server.upload_files() == []


def test_stream_client_disconnect_cancels_and_frees_the_worker(
    api_server: RunningServer, speech_five_minutes: Path, speech_wav_short: Path
) -> None:
    worker = api_server.runtime.worker
    cancelled_before = worker.cancelled
    with httpx.stream(
        "POST",
        f"{api_server.base_url}/v1/audio/transcriptions",
        files={"file": ("long.wav", speech_five_minutes.read_bytes(), "audio/wav")},
        data={"model": "whisper-1", "stream": "true"},
        timeout=_WAIT_S,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        assert '"type":"transcript.text.delta"' in first
    # leaving the block closed the connection mid-stream
    short = _short_post(api_server, speech_wav_short)
    assert short.status_code == 200
    api_server.wait_idle()
    assert worker.cancelled == cancelled_before + 1
    assert child_processes("ffmpeg") == []
    assert api_server.upload_files() == []


def test_client_leaving_during_upload_leaves_nothing(
    api_server: RunningServer, speech_wav_short: Path
) -> None:
    payload = _request_bytes(api_server, speech_wav_short, {})
    sock = _send_raw(api_server, payload[: len(payload) // 2])
    _until(lambda: api_server.runtime.worker.active == 1, "the upload to be admitted")
    sock.close()
    api_server.wait_idle()
    assert api_server.upload_files() == []
