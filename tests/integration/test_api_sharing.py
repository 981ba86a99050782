"""Work is never done twice: retries and duplicates share one job, a short client timeout is
outlived, an abandoned job waits out its grace period, finished results survive a restart.

Jobs are held deterministically at a gate (tests.fixtures.gated); "ran once" is asserted on the
transcriber's call count and on the server log's `job <id> started` lines.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx
import openai
import pytest
from openai import omit

from gigaam_api.server.jobs import Job
from tests.fixtures.gated import Gate, gated_factory
from tests.fixtures.server import (
    WAIT_S,
    RunningServer,
    ServerFactory,
    collect_logs,
    post_audio,
    request_bytes,
    send_raw,
    until,
)


@pytest.fixture
def job_log() -> Iterator[list[logging.LogRecord]]:
    with collect_logs("gigaam_api.server.jobs") as records:
        yield records


def started_lines(records: list[logging.LogRecord], job_id: str) -> int:
    return sum(1 for r in records if r.getMessage().startswith(f"job {job_id} started"))


@pytest.fixture(scope="module")
def reference_text(api_server: RunningServer, speech_wav_short: Path) -> str:
    """The transcript of speech_wav_short from an ordinary server."""
    text = post_audio(api_server, speech_wav_short).json()["text"]
    assert isinstance(text, str) and text
    return text


def sdk(server: RunningServer, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", **options)


def the_job(server: RunningServer) -> Job:
    """The server's one running job."""
    [job] = server.runtime.jobs.active()
    return job


def post_in_thread(server: RunningServer, audio: Path) -> tuple[threading.Thread, list[Any]]:
    """POST `audio` from a thread; the response lands in the returned list."""
    responses: list[httpx.Response] = []

    def post() -> None:
        responses.append(post_audio(server, audio))

    thread = threading.Thread(target=post)
    thread.start()
    return thread, responses


def test_a_retry_attaches_to_the_running_job_which_runs_once(
    server_factory: ServerFactory,
    speech_wav_short: Path,
    reference_text: str,
    job_log: list[logging.LogRecord],
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate), job_grace_s=60.0)
    outcome: dict[str, Any] = {}

    def call() -> None:
        # text: no heartbeat, so the 2 s read timeout fires and the SDK retries (2 by default)
        with sdk(server, timeout=2.0) as client, speech_wav_short.open("rb") as audio:
            raw = client.audio.transcriptions.with_raw_response.create(
                model="whisper-1", file=audio, response_format="text"
            )
            outcome["text"] = raw.parse()
            outcome["job_id"] = raw.headers["x-job-id"]

    caller = threading.Thread(target=call)
    caller.start()
    until(lambda: gate.waiting == 1, "the job to be held")
    job = the_job(server)
    until(lambda: job.requests >= 2, "a retry to attach to the job")
    gate.open()
    caller.join(WAIT_S)
    assert outcome["text"] == f"{reference_text}\n"
    assert outcome["job_id"] == job.id
    assert gate.calls == 1
    assert started_lines(job_log, job.id) == 1
    server.assert_clean()


def test_a_client_with_a_short_timeout_gets_a_long_json_answer(
    server_factory: ServerFactory,
    speech_wav_short: Path,
    reference_text: str,
    job_log: list[logging.LogRecord],
) -> None:
    """The acceptance test: a 3 s client timeout against a 10 s job, default retries."""
    timeout_s, job_s = 3.0, 10.0
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate), sync_heartbeat_s=0.5)
    requests_sent: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: requests_sent.append(r.url.path)]})
    outcome: dict[str, Any] = {}

    def call() -> None:
        with (
            sdk(server, timeout=timeout_s, http_client=http) as client,
            speech_wav_short.open("rb") as audio,
        ):
            started_s = time.monotonic()
            raw = client.audio.transcriptions.with_raw_response.create(
                model="whisper-1", file=audio
            )
            outcome["result"] = raw.parse()
            outcome["elapsed_s"] = time.monotonic() - started_s
            outcome["job_id"] = raw.headers["x-job-id"]

    caller = threading.Thread(target=call)
    began_s = time.monotonic()
    caller.start()
    until(lambda: gate.waiting == 1, "the job to be held")
    # the job lasts job_s, well past the client's timeout (this wait is the point of the test)
    until(lambda: time.monotonic() - began_s >= job_s, "the job's length", timeout_s=job_s + 5)
    gate.open()
    caller.join(WAIT_S)
    assert outcome["result"].text == reference_text
    assert outcome["elapsed_s"] > 3 * timeout_s  # longer than all three attempts could wait
    assert requests_sent == ["/v1/audio/transcriptions"]  # one request: no retry was needed
    assert gate.calls == 1
    assert started_lines(job_log, outcome["job_id"]) == 1
    server.assert_clean()


def test_duplicate_concurrent_requests_share_one_job(
    server_factory: ServerFactory, speech_wav_short: Path, reference_text: str
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate))
    results: dict[str, Any] = {}
    job_ids: set[str] = set()
    lock = threading.Lock()

    def call(response_format: Literal["json", "srt", "verbose_json"]) -> None:
        with (
            sdk(server, max_retries=0, timeout=WAIT_S) as client,
            speech_wav_short.open("rb") as audio,
        ):
            raw = client.audio.transcriptions.with_raw_response.create(
                model="whisper-1",
                file=audio,
                response_format=response_format,
                timestamp_granularities=["word"] if response_format == "verbose_json" else omit,
            )
        with lock:
            results[response_format] = raw.parse()
            job_ids.add(raw.headers["x-job-id"])

    formats = ("json", "srt", "verbose_json")
    callers = [threading.Thread(target=call, args=(fmt,)) for fmt in formats]
    for caller in callers:
        caller.start()
    until(lambda: gate.waiting == 1, "the job to be held")
    job = the_job(server)
    until(lambda: job.requests == len(formats), "every duplicate to attach")
    assert job.holders == len(formats)
    assert server.runtime.worker.active == 1  # only the running job holds a queue slot
    gate.open()
    for caller in callers:
        caller.join(WAIT_S)
    assert gate.calls == 1
    assert job_ids == {job.id}
    assert results["json"].text == reference_text
    assert results["verbose_json"].text == reference_text
    assert results["verbose_json"].words  # word timestamps from the one shared run
    assert results["srt"].startswith("1\n00:00:")
    server.assert_clean()


def test_a_job_outlives_its_client_for_a_retry_within_the_grace_period(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate), job_grace_s=60.0)
    worker = server.runtime.worker
    client = send_raw(server, request_bytes(server, speech_wav_short, {"model": "whisper-1"}))
    until(lambda: gate.waiting == 1, "the job to be held")
    job = the_job(server)
    client.close()
    until(lambda: job.holders == 0, "the server to see the client leave")
    assert job.grace_timer is not None
    assert job.status == "running"  # still running: a retry may come back
    assert not job.cancel.is_set()
    # the retry comes back within the grace period and gets the answer
    thread, responses = post_in_thread(server, speech_wav_short)
    until(lambda: job.holders == 1, "the retry to attach")
    assert job.grace_timer is None
    gate.open()
    thread.join(WAIT_S)
    [retry] = responses
    assert retry.status_code == 200
    assert retry.headers["x-job-id"] == job.id
    assert gate.calls == 1
    server.assert_clean()
    assert worker.cancelled == 0


def test_after_the_grace_period_the_abandoned_job_is_cancelled(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate), job_grace_s=0.5)
    client = send_raw(server, request_bytes(server, speech_wav_short, {"model": "whisper-1"}))
    until(lambda: gate.waiting == 1, "the job to be held")
    job = the_job(server)
    client.close()
    until(lambda: job.status == "cancelled", "the grace period to run out")
    server.assert_clean()
    assert server.runtime.worker.cancelled == 1
    assert gate.calls == 1


def test_a_cached_result_survives_a_restart_and_a_corrupt_one_is_ignored(
    server_factory: ServerFactory, speech_wav_short: Path, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    first = server_factory(cache_dir=str(cache_dir))
    verbose_words = {"response_format": "verbose_json", "timestamp_granularities[]": "word"}
    response = post_audio(first, speech_wav_short, verbose_words)
    assert response.status_code == 200
    job_id = response.headers["x-job-id"]
    words = response.json()["words"]
    first.stop()
    [entry] = cache_dir.glob("*.json")
    assert job_id in entry.name

    gate = Gate()  # never opened: nothing may run on the second server
    second = server_factory(transcriber_factory=gated_factory(gate), cache_dir=str(cache_dir))
    with sdk(second, max_retries=0) as client, speech_wav_short.open("rb") as audio:
        raw = client.audio.transcriptions.with_raw_response.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    assert raw.headers["x-job-id"] == job_id
    assert [w.model_dump() for w in raw.parse().words or []] == words
    by_id = httpx.get(f"{second.base_url}/v1/audio/transcriptions/jobs/{job_id}", timeout=WAIT_S)
    assert by_id.json()["status"] == "done"
    assert gate.calls == 0
    health = httpx.get(f"{second.base_url}/health").json()
    assert health["cache"]["entries"] == 1
    second.stop()

    header, _, body = entry.read_bytes().partition(b"\n")
    entry.write_bytes(header + b"\n" + body.replace(b"1", b"2", 1))  # one digit off on disk
    gate = Gate()
    gate.open()
    third = server_factory(transcriber_factory=gated_factory(gate), cache_dir=str(cache_dir))
    again = post_audio(third, speech_wav_short, verbose_words)
    assert again.status_code == 200
    assert again.json()["words"] == words  # transcribed afresh, not served from the bad entry
    assert again.headers["x-job-id"] != job_id
    assert gate.calls == 1
    third.assert_clean()


def test_a_failure_after_the_heartbeat_started_is_an_openai_error_body(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate), sync_heartbeat_s=0.2)
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
        timeout=WAIT_S,
    ) as response:
        assert response.status_code == 200  # committed while the job is held
        assert response.headers["content-type"] == "application/json"
        chunks = response.iter_bytes()
        assert next(chunks).strip() == b""  # a heartbeat
        job = the_job(server)
        httpx.delete(f"{server.base_url}/v1/audio/transcriptions/jobs/{job.id}")
        body = b"".join(chunks)
    assert httpx.Response(200, content=body).json() == {
        "error": {
            "message": "The transcription job was cancelled.",
            "type": "invalid_request_error",
            "param": None,
            "code": "job_cancelled",
        }
    }
    server.assert_clean()
