"""SSE from a job: OpenAI events, replay for late watchers, the comments of a waiting stream."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from gigaam_api.errors import AudioDecodeError
from gigaam_api.server import sse
from gigaam_api.server.intake import Watch
from gigaam_api.server.jobs import Job
from gigaam_api.server.registry import JobRegistry, JobSpec
from gigaam_api.server.worker import Worker
from gigaam_api.types import Segment, TranscribeOptions
from tests.unit.server.fakes import FakeClient, ScriptedTranscriber, until

SEGMENTS = (
    Segment(0, 0.0, 2.0, "привет мир"),
    Segment(1, 2.5, 4.0, ""),
    Segment(2, 4.5, 6.2, "  как   дела "),
)
DONE = {
    "type": "transcript.text.done",
    "text": "привет мир как дела",
    "usage": {"type": "duration", "seconds": 7},
}
_WAIT_S = 30.0


def parse(chunk: str) -> object:
    assert chunk.endswith("\n\n")
    if chunk.startswith(":"):
        return chunk.strip()
    if chunk == sse.DONE:
        return "[DONE]"
    return json.loads(chunk.removeprefix("data: "))


class Streams:
    """Jobs on a registry, and SSE streams that follow them."""

    def __init__(self, worker: Worker, tmp_path: Path) -> None:
        self.registry = JobRegistry(worker, None, grace_s=0.0, loop=asyncio.get_running_loop())
        self.worker = worker
        self.tmp_path = tmp_path

    async def job(self, transcriber: ScriptedTranscriber, key: str) -> Job:
        path = self.tmp_path / f"{key[:4]}.wav"
        path.write_bytes(b"audio")
        spec = JobSpec(key, "scripted", transcriber, TranscribeOptions())
        acquired = await self.registry.acquire(spec, path, self.worker.admit(), pinned=False)
        return acquired.job

    def stream(
        self, job: Job, client: FakeClient, *, holds: bool = False, keepalive_s: float = 10.0
    ) -> AsyncIterator[str]:
        watch = Watch(self.registry, job, client.receive, holds=holds)
        return sse.iter_sse(watch, self.registry, keepalive_s=keepalive_s)


async def collect(stream: AsyncIterator[str]) -> list[object]:
    return [parse(chunk) async for chunk in stream]


def test_deltas_done_and_done_marker_also_replayed_to_a_late_watcher(
    worker: Worker, tmp_path: Path
) -> None:
    async def scenario() -> tuple[list[object], list[object]]:
        streams = Streams(worker, tmp_path)
        job = await streams.job(ScriptedTranscriber(SEGMENTS, duration_s=6.2), "a" * 64)
        live = await collect(streams.stream(job, FakeClient()))
        late = await collect(streams.stream(job, FakeClient()))  # after the job has ended
        return live, late

    live, late = asyncio.run(asyncio.wait_for(scenario(), _WAIT_S))
    events = [event for event in live if not str(event).startswith(":")]
    assert events == [
        {"type": "transcript.text.delta", "delta": "привет мир"},
        {"type": "transcript.text.delta", "delta": " как дела"},
        DONE,
        "[DONE]",
    ]
    assert late == events


def test_a_failure_is_an_error_event_without_done(worker: Worker, tmp_path: Path) -> None:
    async def scenario() -> list[object]:
        streams = Streams(worker, tmp_path)
        transcriber = ScriptedTranscriber(SEGMENTS[:1], fail_with=AudioDecodeError("broke"))
        job = await streams.job(transcriber, "a" * 64)
        return await collect(streams.stream(job, FakeClient()))

    events = asyncio.run(asyncio.wait_for(scenario(), _WAIT_S))
    assert events[-1] == {
        "type": "error",
        "error": {
            "message": "broke",
            "type": "invalid_request_error",
            "param": "file",
            "code": "invalid_audio",
        },
    }
    assert "[DONE]" not in events


def test_a_queued_stream_tells_its_place_then_its_progress(worker: Worker, tmp_path: Path) -> None:
    ahead_step, own_step = threading.Event(), threading.Event()

    async def scenario() -> list[object]:
        streams = Streams(worker, tmp_path)
        ahead = await streams.job(ScriptedTranscriber(SEGMENTS, step=ahead_step), "a" * 64)
        await until(ahead, lambda job: job.status == "running")
        own = await streams.job(
            ScriptedTranscriber(SEGMENTS[:1], duration_s=6.2, step=own_step), "b" * 64
        )
        stream = streams.stream(own, FakeClient(), keepalive_s=0.05)
        seen = [parse(await anext(stream))]
        streams.registry.cancel(ahead)  # the job ahead goes: ours runs, held at its first step
        async for chunk in stream:
            seen.append(parse(chunk))
            if str(seen[-1]).startswith(": progress") and len(seen) >= 3:
                own_step.set()  # seen twice: let it finish
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), _WAIT_S))
    assert seen[0] == ": queued position=1"
    progress = [event for event in seen if str(event).startswith(": progress")]
    assert progress[0] == ": progress 0.00"  # held before its first segment; eta unknown yet
    assert seen[-2:] == [
        {"type": "transcript.text.done", "text": "привет мир", "usage": DONE["usage"]},
        "[DONE]",
    ]


def test_a_stream_with_nothing_to_say_keeps_alive(worker: Worker, tmp_path: Path) -> None:
    step = threading.Event()

    async def scenario() -> list[object]:
        streams = Streams(worker, tmp_path)
        job = await streams.job(ScriptedTranscriber(SEGMENTS, duration_s=0.0, step=step), "a" * 64)
        seen: list[object] = []
        async for chunk in streams.stream(job, FakeClient(), keepalive_s=0.05):
            seen.append(parse(chunk))
            if seen.count(": keep-alive") == 2:
                streams.registry.cancel(job)
        return seen

    seen = asyncio.run(asyncio.wait_for(scenario(), _WAIT_S))
    assert seen.count(": keep-alive") == 2  # duration unknown: no progress to tell
    assert isinstance(seen[-1], dict) and seen[-1]["error"]["code"] == "job_cancelled"


def test_a_holding_client_that_leaves_ends_the_stream_and_lets_go(
    worker: Worker, tmp_path: Path
) -> None:
    step = threading.Event()

    async def scenario() -> Job:
        streams = Streams(worker, tmp_path)
        job = await streams.job(ScriptedTranscriber(SEGMENTS, step=step), "a" * 64)
        client = FakeClient()
        stream = streams.stream(job, client, holds=True)
        assert job.holders == 1
        await anext(stream)
        client.leave()
        rest = [chunk async for chunk in stream]
        assert all(chunk.startswith(":") for chunk in rest)
        return job

    job = asyncio.run(asyncio.wait_for(scenario(), _WAIT_S))
    assert job.holders == 0
    assert job.status == "cancelled"  # no grace in this registry: the last client leaving cancels
