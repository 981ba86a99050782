"""The worker's admission, ordering, cleanup and cancellation, and SSE framing from its events."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gigaam_api.errors import AudioDecodeError
from gigaam_api.server import sse
from gigaam_api.server.errors import ServiceUnavailableError
from gigaam_api.server.worker import Failed, Finished, Job, SegmentReady, Started, Worker
from gigaam_api.types import Segment, TranscribeOptions
from tests.unit.server.fakes import ScriptedTranscriber

SEGMENTS = (
    Segment(0, 0.0, 2.0, "привет мир"),
    Segment(1, 2.5, 4.0, ""),
    Segment(2, 4.5, 6.2, "  как   дела "),
)


@pytest.fixture
def worker() -> Iterator[Worker]:
    running = Worker(max_queue=2)
    running.start()
    yield running
    running.stop()


def _job(worker: Worker, transcriber: ScriptedTranscriber, path: Path) -> Job:
    path.write_bytes(b"audio")
    return Job(transcriber, path, TranscribeOptions(), worker.admit(), asyncio.get_running_loop())


async def _drain(job: Job) -> list[object]:
    events: list[object] = []
    while True:
        event = await job.next_event(10)
        events.append(event)
        if isinstance(event, Finished | Failed) or event is None:
            return events


def test_admission_counts_and_refuses_one_over(worker: Worker) -> None:
    first, second = worker.admit(), worker.admit()
    with pytest.raises(ServiceUnavailableError) as caught:
        worker.admit()
    assert caught.value.code == "queue_full"
    assert caught.value.headers() == {"Retry-After": "5"}
    first.release()
    first.release()  # idempotent
    assert worker.active == 1
    second.release()
    assert worker.active == 0


def test_job_events_in_order_then_cleanup(worker: Worker, tmp_path: Path) -> None:
    async def scenario() -> list[object]:
        job = _job(worker, ScriptedTranscriber(SEGMENTS, duration_s=6.2), tmp_path / "a.wav")
        worker.submit(job)
        return await _drain(job)

    events = asyncio.run(scenario())
    assert events[0] == Started(6.2)
    assert [e.segment for e in events[1:4] if isinstance(e, SegmentReady)] == list(SEGMENTS)
    assert isinstance(events[4], Finished)
    assert events[4].duration_s == 6.2
    _wait_idle(worker)
    assert not (tmp_path / "a.wav").exists()
    assert worker.completed == 1


def test_probe_error_is_one_failed_event(worker: Worker, tmp_path: Path) -> None:
    async def scenario() -> list[object]:
        transcriber = ScriptedTranscriber(probe_error=AudioDecodeError("not audio"))
        job = _job(worker, transcriber, tmp_path / "bad.wav")
        worker.submit(job)
        return await _drain(job)

    events = asyncio.run(scenario())
    assert len(events) == 1
    assert isinstance(events[0], Failed)
    assert isinstance(events[0].error, AudioDecodeError)
    _wait_idle(worker)
    assert not (tmp_path / "bad.wav").exists()


def test_cancel_mid_run_frees_the_worker_and_skips_a_cancelled_queued_job(
    worker: Worker, tmp_path: Path
) -> None:
    step = threading.Event()
    long_run = ScriptedTranscriber(SEGMENTS * 10, step=step)
    queued = ScriptedTranscriber(SEGMENTS)

    async def scenario() -> None:
        running = _job(worker, long_run, tmp_path / "long.wav")
        waiting = _job(worker, queued, tmp_path / "queued.wav")
        worker.submit(running)
        worker.submit(waiting)
        assert isinstance(await running.next_event(10), Started)
        step.set()
        assert isinstance(await running.next_event(10), SegmentReady)
        waiting.abandon()
        running.abandon()
        step.set()

    asyncio.run(scenario())
    _wait_idle(worker)
    assert worker.cancelled == 2
    assert queued.paths == []  # never started
    assert long_run.runs[0].closed
    assert list(tmp_path.iterdir()) == []


def _wait_idle(worker: Worker) -> None:
    for _ in range(1000):
        if worker.active == 0 and not worker.running:
            return
        threading.Event().wait(0.01)
    raise AssertionError("worker still busy")


def _parse(chunks: list[str]) -> list[object]:
    parsed: list[object] = []
    for chunk in chunks:
        assert chunk.endswith("\n\n")
        if chunk.startswith(":"):
            parsed.append("keep-alive")
        elif chunk == sse.DONE:
            parsed.append("[DONE]")
        else:
            parsed.append(json.loads(chunk.removeprefix("data: ")))
    return parsed


def _stream(job: Job, keepalive_s: float = 5.0) -> list[str]:
    async def collect() -> list[str]:
        return [chunk async for chunk in sse.iter_sse(job, keepalive_s=keepalive_s)]

    return asyncio.run(collect())


def _filled_job(events: list[object]) -> Job:
    async def make() -> Job:
        job = Job(
            ScriptedTranscriber(),
            Path("unused"),
            TranscribeOptions(),
            Worker(1).admit(),
            asyncio.get_running_loop(),
        )
        return job

    job = asyncio.run(make())
    for event in events:
        job.events.put_nowait(event)  # type: ignore[arg-type]  # scripted JobEvents
    return job


def test_sse_deltas_done_and_done_marker() -> None:
    job = _filled_job([*(SegmentReady(s) for s in SEGMENTS), Finished(6.2, 0.5)])
    parsed = _parse(_stream(job))
    assert parsed == [
        {"type": "transcript.text.delta", "delta": "привет мир"},
        {"type": "transcript.text.delta", "delta": " как дела"},
        {
            "type": "transcript.text.done",
            "text": "привет мир как дела",
            "usage": {"type": "duration", "seconds": 7},
        },
        "[DONE]",
    ]
    deltas = "".join(str(p["delta"]) for p in parsed if isinstance(p, dict) and "delta" in p)
    assert deltas == "привет мир как дела"
    assert job.cancel.is_set()


def test_sse_error_event_and_no_done_marker() -> None:
    job = _filled_job([SegmentReady(SEGMENTS[0]), Failed(AudioDecodeError("broke"))])
    parsed = _parse(_stream(job))
    assert parsed[-1] == {
        "type": "error",
        "error": {
            "message": "broke",
            "type": "invalid_request_error",
            "param": "file",
            "code": "invalid_audio",
        },
    }
    assert "[DONE]" not in parsed


def test_sse_keepalive_comment_while_waiting() -> None:
    async def scenario() -> list[str]:
        job = Job(
            ScriptedTranscriber(),
            Path("unused"),
            TranscribeOptions(),
            Worker(1).admit(),
            asyncio.get_running_loop(),
        )
        asyncio.get_running_loop().call_later(0.25, job.events.put_nowait, Finished(1.0, 0.1))
        return [chunk async for chunk in sse.iter_sse(job, keepalive_s=0.05)]

    chunks = asyncio.run(scenario())
    assert chunks[0] == sse.KEEPALIVE
    assert chunks[-1] == sse.DONE
    assert _parse(chunks)[-2] == {
        "type": "transcript.text.done",
        "text": "",
        "usage": {"type": "duration", "seconds": 1},
    }
