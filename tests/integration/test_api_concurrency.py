"""The queue under a burst, clients that leave mid-request (sync and streaming, with no grace
period: JOB_GRACE_S=0 on these servers), and streams that talk while they wait in line.

The burst and the clients that leave meet a server in its own process, as a user runs it (not
sharing the tests' GIL and threads); its runs are held at a gate after their first segment
(tests.fixtures.gated_serve), so "still running when the client hangs up" never depends on how
fast the machine is. Counts come from /metrics.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.gated import Gate, gated_factory
from tests.fixtures.metrics import gauge, jobs_ended
from tests.fixtures.processes import ServerProcess, start_server_process
from tests.fixtures.server import (
    WAIT_S,
    ServerFactory,
    post_audio,
    request_bytes,
    send_raw,
    until,
)

TRANSCRIPTIONS = "/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def queue_of_three(
    tiny_v3_ctc_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """`gigaam-api serve` in its own process, MAX_QUEUE=3, jobs cancelled as their client goes;
    no upload deadline, so an upload held by a test keeps its place however slow the machine."""
    server = start_server_process(
        tiny_v3_ctc_checkpoint,
        tmp_path_factory.mktemp("queue"),
        MAX_QUEUE="3",
        JOB_GRACE_S="0",
        UPLOAD_IDLE_TIMEOUT_S="0",
        UPLOAD_MIN_RATE_KIB_S="0",
    )
    server.wait_ready()
    yield server
    server.stop()


def held_server(checkpoint: Path, directory: Path, servers: list[ServerProcess]) -> ServerProcess:
    """A server process whose runs stop after their first segment until its gate file exists."""
    server = start_server_process(checkpoint, directory, gate=directory / "gate", JOB_GRACE_S="0")
    servers.append(server)
    server.wait_ready()
    return server


def test_burst_of_max_queue_plus_three_rejects_exactly_the_extra(
    queue_of_three: ServerProcess, speech_wav_short: Path
) -> None:
    server, max_queue = queue_of_three, 3
    request = httpx.Request(
        "POST",
        f"{server.base_url}{TRANSCRIPTIONS}",
        files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"model": "whisper-1"},
    )
    body = request.read()
    gate = threading.Event()
    answers: list[httpx.Response] = []
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
            answers.append(response)

    held = [threading.Thread(target=send, args=(True,)) for _ in range(max_queue)]
    for thread in held:
        thread.start()
    until(lambda: gauge(server.metrics(), "gigaam_queue_active") == max_queue, "a full queue")
    extra = [threading.Thread(target=send, args=(False,)) for _ in range(3)]
    for thread in extra:
        thread.start()
    for thread in extra:
        thread.join(WAIT_S)
    assert [response.status_code for response in answers] == [503, 503, 503]
    for refused in answers:
        assert refused.json()["error"]["code"] == "queue_full"
        assert int(refused.headers["retry-after"]) > 0
    gate.set()
    for thread in held:
        thread.join(WAIT_S)
    served = answers[3:]
    assert [response.status_code for response in served] == [200] * max_queue
    assert len({response.json()["text"] for response in served}) == 1  # the same file, 3 times
    server.assert_clean()


def test_sync_client_disconnect_cancels_and_frees_the_worker(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
    speech_long: Path,
    noise_wav: Path,
    speech_wav_short: Path,
) -> None:
    server = held_server(tiny_v3_ctc_checkpoint, tmp_path, servers)
    running = send_raw(server, request_bytes(server, speech_long, {}))
    server.wait_held()  # mid-run: its first segment is out, the rest waits at the gate
    # a second job waits behind it; its client leaves too
    waiting = send_raw(server, request_bytes(server, noise_wav, {}))
    until(lambda: gauge(server.metrics(), "gigaam_queue_waiting") == 1, "the second job to queue")
    waiting.close()
    running.close()
    until(lambda: jobs_ended(server.metrics(), "cancelled") == 2, "both jobs cancelled")
    assert jobs_ended(server.metrics(), "done") == 0
    server.open_gate()
    short = post_audio(server, speech_wav_short)
    assert short.status_code == 200
    assert short.json()["text"]
    server.assert_clean()
    assert jobs_ended(server.metrics(), "done") == 1


def test_stream_client_disconnect_cancels_and_frees_the_worker(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
    speech_long: Path,
    speech_wav_short: Path,
) -> None:
    server = held_server(tiny_v3_ctc_checkpoint, tmp_path, servers)
    with httpx.stream(
        "POST",
        f"{server.base_url}{TRANSCRIPTIONS}",
        files={"file": ("long.wav", speech_long.read_bytes(), "audio/wav")},
        data={"model": "whisper-1", "stream": "true"},
        timeout=WAIT_S,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        assert json.loads(first.removeprefix("data: "))["type"] == "transcript.text.delta"
        server.wait_held()
    # leaving the block closed the connection mid-stream, the run still held
    until(lambda: jobs_ended(server.metrics(), "cancelled") == 1, "the stream's job cancelled")
    server.open_gate()
    short = post_audio(server, speech_wav_short)
    assert short.status_code == 200
    assert short.json()["text"]
    server.assert_clean()
    assert jobs_ended(server.metrics(), "done") == 1


def test_client_leaving_during_upload_leaves_nothing(
    queue_of_three: ServerProcess, speech_wav_short: Path
) -> None:
    server = queue_of_three
    server.wait_idle()
    payload = request_bytes(server, speech_wav_short, {})
    sock = send_raw(server, payload[: len(payload) // 2])
    until(lambda: gauge(server.metrics(), "gigaam_queue_active") == 1, "the upload admitted")
    until(lambda: server.uploads() != [], "the upload to reach the disk")
    sock.close()
    server.assert_clean()


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
