"""The stop sequence on a real worker with scripted transcriptions: refuse new work, cancel the
queue at once, give the running job its grace, record what was cancelled so that its id still
answers after a restart."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from gigaam_api.errors import ShuttingDownError, TranscriptionCancelledError
from gigaam_api.server.errors import describe
from gigaam_api.server.interrupted import InterruptedJobs
from gigaam_api.server.lifecycle import Lifecycle
from gigaam_api.server.registry import Acquired, JobRegistry, JobSpec
from gigaam_api.server.worker import Worker
from gigaam_api.types import Segment, TranscribeOptions
from tests.unit.server.fakes import ScriptedTranscriber, until

SEGMENTS = (Segment(0, 0.0, 2.0, "привет мир"), Segment(1, 4.5, 6.2, "как дела"))
_WAIT_S = 30.0


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), _WAIT_S))


class Server:
    """A registry with interrupted-job records over a real worker, and its stop sequence."""

    def __init__(self, worker: Worker, tmp_path: Path, *, grace_s: float) -> None:
        self.worker = worker
        self.tmp_path = tmp_path
        records = tmp_path / "records"
        records.mkdir(exist_ok=True)
        self.interrupted = InterruptedJobs(records, ttl_s=3600)
        self.registry = JobRegistry(
            worker,
            None,
            grace_s=0.0,
            loop=asyncio.get_running_loop(),
            interrupted=self.interrupted,
        )
        self.lifecycle = Lifecycle(worker, self.registry, grace_s=grace_s)
        self.uploads = 0

    async def submit(self, transcriber: ScriptedTranscriber, key: str) -> Acquired:
        self.uploads += 1
        path = self.tmp_path / f"upload-{self.uploads}.wav"
        path.write_bytes(b"audio")
        spec = JobSpec(key, "scripted", transcriber, TranscribeOptions())
        return await self.registry.acquire(spec, path, self.worker.admit(), pinned=True)

    def leftovers(self) -> list[Path]:
        return sorted(self.tmp_path.glob("upload-*"))


def test_the_queue_is_cancelled_at_once_and_the_running_job_finishes_in_its_grace(
    worker: Worker, tmp_path: Path
) -> None:
    step = threading.Event()
    running_transcriber = ScriptedTranscriber(SEGMENTS, duration_s=6.2, step=step)

    async def scenario() -> None:
        server = Server(worker, tmp_path, grace_s=600)
        running = (await server.submit(running_transcriber, "a" * 64)).job
        await until(running, lambda j: j.status == "running")
        queued = (await server.submit(ScriptedTranscriber(SEGMENTS), "b" * 64)).job

        stopping = asyncio.create_task(server.lifecycle.stop())
        await until(queued, lambda j: j.terminal)
        assert server.lifecycle.stopping
        assert queued.status == "cancelled"
        assert isinstance(queued.error, ShuttingDownError)
        assert describe(queued.error).code == "server_shutting_down"
        with pytest.raises(ShuttingDownError):
            worker.admit()
        assert not stopping.done()  # the running job has its grace period

        step.set()
        await until(running, lambda j: j.segments == list(SEGMENTS[:1]))
        step.set()
        await stopping
        assert running.status == "done"
        assert server.interrupted.get(queued.id) is not None
        assert server.interrupted.get(running.id) is None
        assert worker.active == 0
        assert server.leftovers() == []

    run(scenario)


def test_past_the_grace_period_the_running_job_is_cancelled_closed_and_recorded(
    worker: Worker, tmp_path: Path
) -> None:
    transcriber = ScriptedTranscriber(SEGMENTS, duration_s=6.2, step=threading.Event())

    async def scenario() -> None:
        server = Server(worker, tmp_path, grace_s=0)
        job = (await server.submit(transcriber, "a" * 64)).job
        await until(job, lambda j: j.probed and j.status == "running")
        await server.lifecycle.stop()
        assert job.status == "cancelled"
        assert isinstance(job.error, ShuttingDownError)
        assert worker.current is None  # the worker let go before stop() returned
        record = server.interrupted.get(job.id)
        assert record is not None
        assert (record.key, record.duration_s) == ("a" * 64, 6.2)
        assert server.leftovers() == []

    run(scenario)
    assert transcriber.runs[0].closed


def test_a_second_signal_ends_a_long_grace_period(worker: Worker, tmp_path: Path) -> None:
    transcriber = ScriptedTranscriber(SEGMENTS, step=threading.Event())

    async def scenario() -> None:
        server = Server(worker, tmp_path, grace_s=3600)
        job = (await server.submit(transcriber, "a" * 64)).job
        await until(job, lambda j: j.status == "running")
        stopping = asyncio.create_task(server.lifecycle.stop())
        await asyncio.sleep(0)
        assert not stopping.done()
        await server.lifecycle.stop()  # the second signal
        await stopping
        assert job.status == "cancelled"

    run(scenario)


def test_an_upload_finishing_while_the_server_stops_gets_no_job(
    worker: Worker, tmp_path: Path
) -> None:
    async def scenario() -> None:
        server = Server(worker, tmp_path, grace_s=0)
        slot = worker.admit()  # admitted before the signal, still uploading
        await server.lifecycle.stop()
        path = tmp_path / "upload-late.wav"
        path.write_bytes(b"audio")
        spec = JobSpec("c" * 64, "scripted", ScriptedTranscriber(SEGMENTS), TranscribeOptions())
        with pytest.raises(ShuttingDownError):
            await server.registry.acquire(spec, path, slot, pinned=False)
        assert not path.exists()
        assert worker.active == 0

    run(scenario)


def test_after_a_restart_an_interrupted_id_answers_cancelled(
    worker: Worker, tmp_path: Path
) -> None:
    async def scenario() -> None:
        before = Server(worker, tmp_path, grace_s=0)
        job = (
            await before.submit(ScriptedTranscriber(SEGMENTS, step=threading.Event()), "a" * 64)
        ).job
        await until(job, lambda j: j.status == "running")
        await before.lifecycle.stop()

        after = Server(Worker(max_queue=1), tmp_path, grace_s=0)  # a new process, same CACHE_DIR
        found = await after.registry.find(job.id)
        assert (found.id, found.status, found.created_at) == (job.id, "cancelled", job.created_at)
        assert isinstance(found.error, TranscriptionCancelledError)
        assert describe(found.error).code == "job_cancelled"
        with pytest.raises(TranscriptionCancelledError):
            await after.registry.result(found)
        assert (await after.registry.find(job.id)) is found

    run(scenario)
