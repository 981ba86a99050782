"""The queue under a burst, clients that leave mid-request (sync and streaming, with no grace
period: JOB_GRACE_S=0 on these servers), and streams that talk while they wait in line."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.audio import stitch
from tests.fixtures.gated import Gate, gated_factory
from tests.fixtures.server import (
    WAIT_S,
    RunningServer,
    ServerFactory,
    post_audio,
    request_bytes,
    send_raw,
    until,
)


@pytest.fixture(scope="module")
def speech_five_minutes(audio_dir: Path, speech_long: Path) -> Path:
    """speech_long four times (about 5 min): long enough to be mid-run when the client leaves."""
    return stitch([speech_long] * 4, audio_dir / "speech_five_minutes.wav")


@pytest.fixture(scope="module")
def speech_four_minutes(audio_dir: Path, speech_long: Path) -> Path:
    """Other long audio (a job of its own, not shared with speech_five_minutes)."""
    return stitch([speech_long] * 3, audio_dir / "speech_four_minutes.wav")


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
        gate.wait(WAIT_S)
        yield body[2048:]

    def send(gated: bool) -> None:
        response = httpx.post(
            str(request.url),
            content=gated_body() if gated else body,
            headers={"content-type": request.headers["content-type"]},
            timeout=WAIT_S,
        )
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 503:
                retry_after.append(response.headers["retry-after"])
                assert response.json()["error"]["code"] == "queue_full"

    held = [threading.Thread(target=send, args=(True,)) for _ in range(max_queue)]
    for thread in held:
        thread.start()
    until(lambda: server.runtime.worker.active == max_queue, "the queue to fill")
    extra = [threading.Thread(target=send, args=(False,)) for _ in range(3)]
    for thread in extra:
        thread.start()
    for thread in extra:
        thread.join(WAIT_S)
    assert sorted(statuses) == [503, 503, 503]
    gate.set()
    for thread in held:
        thread.join(WAIT_S)
    assert sorted(statuses) == [200] * max_queue + [503] * 3
    assert all(int(value) > 0 for value in retry_after)
    server.assert_clean()


def test_sync_client_disconnect_cancels_and_frees_the_worker(
    api_server: RunningServer,
    speech_five_minutes: Path,
    speech_four_minutes: Path,
    speech_wav_short: Path,
) -> None:
    worker = api_server.runtime.worker
    cancelled_before = worker.cancelled
    long_request = send_raw(api_server, request_bytes(api_server, speech_five_minutes, {}))
    until(lambda: worker.current is not None, "the long job to start")
    # a second long job waits behind it; its client leaves too
    waiting = send_raw(api_server, request_bytes(api_server, speech_four_minutes, {}))
    until(lambda: len(worker.waiting()) == 1, "the second job to queue")
    waiting.close()
    long_request.close()
    short = post_audio(api_server, speech_wav_short)
    assert short.status_code == 200
    assert "text" in short.json()
    api_server.assert_clean()
    assert worker.cancelled == cancelled_before + 2


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
        timeout=WAIT_S,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        assert '"type":"transcript.text.delta"' in first
    # leaving the block closed the connection mid-stream
    short = post_audio(api_server, speech_wav_short)
    assert short.status_code == 200
    api_server.assert_clean()
    assert worker.cancelled == cancelled_before + 1


def test_client_leaving_during_upload_leaves_nothing(
    api_server: RunningServer, speech_wav_short: Path
) -> None:
    payload = request_bytes(api_server, speech_wav_short, {})
    sock = send_raw(api_server, payload[: len(payload) // 2])
    until(lambda: api_server.runtime.worker.active == 1, "the upload to be admitted")
    sock.close()
    api_server.assert_clean()


def test_a_stream_waiting_in_the_queue_talks_at_once_and_while_it_runs(
    server_factory: ServerFactory, speech_wav_short: Path, speech_long: Path
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate), sse_keepalive_s=0.2)
    worker = server.runtime.worker
    ahead = threading.Thread(target=post_audio, args=(server, speech_wav_short))
    ahead.start()
    until(lambda: gate.waiting == 1, "the job ahead to be held")
    lines: list[str] = []
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("long.wav", speech_long.read_bytes(), "audio/wav")},
        data={"model": "whisper-1", "stream": "true"},
        timeout=WAIT_S,
    ) as response:
        # headers and a comment while still queued: the job ahead is held, nothing has run
        assert response.status_code == 200
        assert response.headers["x-job-id"]
        assert len(worker.waiting()) == 1
        for line in response.iter_lines():
            lines.append(line)
            if line == ": queued position=1":
                gate.open()  # let the job ahead go; ours runs next (and passes the open gate)
            if line == "data: [DONE]":
                break
    ahead.join(WAIT_S)
    assert lines[0] == ": queued position=1"
    assert any(line.startswith(": progress ") for line in lines)
    data = [line for line in lines if line.startswith("data: ")]
    assert '"type":"transcript.text.delta"' in data[0]
    assert '"type":"transcript.text.done"' in data[-2]
    assert gate.calls == 2
    server.assert_clean()
