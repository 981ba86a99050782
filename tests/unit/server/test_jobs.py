"""Jobs and the registry: one run per key, attaching, the grace period, cancelling, the cache."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from gigaam_api.errors import (
    AudioDecodeError,
    JobNotDoneError,
    JobNotFoundError,
    TranscriptionCancelledError,
)
from gigaam_api.server import registry as registry_module
from gigaam_api.server.cache import ResultCache
from gigaam_api.server.registry import Acquired, JobRegistry, JobSpec
from gigaam_api.server.worker import Worker
from gigaam_api.types import Segment, TranscribeOptions
from tests.unit.server.fakes import ScriptedTranscriber, until

SEGMENTS = (Segment(0, 0.0, 2.0, "привет мир"), Segment(1, 4.5, 6.2, "как дела"))
KEY = "a" * 64
_WAIT_S = 30.0


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), _WAIT_S))


class Harness:
    """A registry over a real worker, with uploads written into tmp_path."""

    def __init__(
        self,
        worker: Worker,
        tmp_path: Path,
        *,
        grace_s: float = 0.0,
        cache: ResultCache | None = None,
    ) -> None:
        self.worker = worker
        self.tmp_path = tmp_path
        self.registry = JobRegistry(worker, cache, grace_s=grace_s, loop=asyncio.get_running_loop())
        self.uploads = 0

    async def submit(
        self, transcriber: ScriptedTranscriber, key: str = KEY, *, pinned: bool = False
    ) -> Acquired:
        self.uploads += 1
        path = self.tmp_path / f"upload-{self.uploads}.wav"
        path.write_bytes(b"audio")
        spec = JobSpec(key, "scripted", transcriber, TranscribeOptions())
        return await self.registry.acquire(spec, path, self.worker.admit(), pinned=pinned)

    def leftovers(self) -> list[Path]:
        return sorted(self.tmp_path.glob("upload-*"))


def test_a_job_runs_reports_and_cleans_up(worker: Worker, tmp_path: Path) -> None:
    transcriber = ScriptedTranscriber(SEGMENTS, duration_s=6.2)

    async def scenario() -> None:
        harness = Harness(worker, tmp_path)
        acquired = await harness.submit(transcriber)
        assert (acquired.reuse, acquired.starts_at_once) == ("new", True)
        job = acquired.job
        await until(job, lambda j: j.terminal)
        assert job.status == "done"
        result = await harness.registry.result(job)
        assert result.segments == SEGMENTS
        assert result.duration_s == 6.2
        progress = job.progress()
        assert (progress.fraction, progress.processed_s, progress.eta_s) == (1.0, 6.2, 0.0)
        assert worker.active == 0  # the slot was freed before anyone heard of the end
        assert harness.leftovers() == []

    run(scenario)
    assert transcriber.runs[0].closed


def test_the_same_key_attaches_and_runs_once(worker: Worker, tmp_path: Path) -> None:
    step = threading.Event()
    transcriber = ScriptedTranscriber(SEGMENTS, step=step)

    async def scenario() -> None:
        harness = Harness(worker, tmp_path)
        first = await harness.submit(transcriber)
        await until(first.job, lambda j: j.status == "running")
        second = await harness.submit(transcriber)
        assert second.job is first.job
        assert (second.reuse, second.starts_at_once) == ("attached", False)
        assert first.job.requests == 2
        assert worker.active == 1  # the attached request gave its slot back
        assert len(harness.leftovers()) == 1  # and its upload is gone
        other = await harness.submit(ScriptedTranscriber(SEGMENTS), key="b" * 64)
        assert other.job is not first.job
        assert harness.registry.position(other.job) == 1
        assert [job.id for job in harness.registry.active()] == [first.job.id, other.job.id]
        step.set()
        await until(first.job, lambda j: j.segments == list(SEGMENTS[:1]))
        step.set()
        await until(first.job, lambda j: j.terminal)
        await until(other.job, lambda j: j.terminal)
        finished = await harness.submit(transcriber)  # a finished job still answers
        assert (finished.job, finished.reuse) == (first.job, "attached")

    run(scenario)
    assert transcriber.calls == 1


def test_a_failed_job_is_run_afresh_next_time(worker: Worker, tmp_path: Path) -> None:
    transcriber = ScriptedTranscriber(probe_error=AudioDecodeError("not audio"))

    async def scenario() -> None:
        harness = Harness(worker, tmp_path)
        first = await harness.submit(transcriber)
        await until(first.job, lambda j: j.terminal)
        assert first.job.status == "failed"
        with pytest.raises(AudioDecodeError):
            await harness.registry.result(first.job)
        second = await harness.submit(transcriber)
        assert second.job is not first.job
        await until(second.job, lambda j: j.terminal)

    run(scenario)
    assert transcriber.calls == 2


def test_a_job_nobody_waits_for_is_cancelled_after_the_grace_period(
    worker: Worker, tmp_path: Path
) -> None:
    step = threading.Event()
    transcriber = ScriptedTranscriber(SEGMENTS, step=step)

    async def scenario() -> None:
        harness = Harness(worker, tmp_path, grace_s=0.05)
        job = (await harness.submit(transcriber)).job
        registry = harness.registry
        registry.hold(job)
        await until(job, lambda j: j.status == "running")
        registry.release(job)  # the client left: the grace period starts
        assert job.grace_timer is not None
        registry.hold(job)  # a retry attached in time
        assert job.grace_timer is None
        registry.release(job)
        await until(job, lambda j: j.terminal)
        assert job.status == "cancelled"
        assert isinstance(job.error, TranscriptionCancelledError)
        with pytest.raises(TranscriptionCancelledError):
            await registry.result(job)
        retry = await harness.submit(transcriber)  # a cancelled job is not attached to
        assert retry.job is not job
        registry.cancel(retry.job)

    run(scenario)
    _wait_for(lambda: worker.active == 0)
    assert worker.cancelled == 2
    assert transcriber.runs[0].closed


def test_with_no_grace_the_last_client_leaving_cancels_at_once(
    worker: Worker, tmp_path: Path
) -> None:
    step = threading.Event()

    async def scenario() -> None:
        harness = Harness(worker, tmp_path, grace_s=0.0)
        job = (await harness.submit(ScriptedTranscriber(SEGMENTS, step=step))).job
        harness.registry.hold(job)
        harness.registry.hold(job)
        harness.registry.release(job)
        assert not job.terminal  # one client still waits
        harness.registry.release(job)
        assert job.status == "cancelled"

    run(scenario)


def test_a_pinned_job_outlives_its_clients(worker: Worker, tmp_path: Path) -> None:
    step = threading.Event()

    async def scenario() -> None:
        harness = Harness(worker, tmp_path, grace_s=0.0)
        job = (await harness.submit(ScriptedTranscriber(SEGMENTS, step=step))).job
        again = await harness.submit(ScriptedTranscriber(SEGMENTS), pinned=True)
        assert again.job is job and job.pinned  # a jobs API submission pins the shared job
        harness.registry.hold(job)
        harness.registry.release(job)
        assert job.grace_timer is None and not job.terminal
        step.set()
        await until(job, lambda j: len(j.segments) == 1)
        step.set()
        await until(job, lambda j: j.terminal)
        assert job.status == "done"

    run(scenario)


def test_cancelling_a_queued_job_frees_its_place_at_once(worker: Worker, tmp_path: Path) -> None:
    step = threading.Event()

    async def scenario() -> None:
        harness = Harness(worker, tmp_path)
        running = (await harness.submit(ScriptedTranscriber(SEGMENTS, step=step))).job
        queued = (await harness.submit(ScriptedTranscriber(SEGMENTS), key="b" * 64)).job
        assert worker.active == 2
        with pytest.raises(JobNotDoneError):
            await harness.registry.result(queued)
        harness.registry.cancel(queued)
        assert queued.status == "cancelled"  # at once, not when the worker gets to it
        assert worker.active == 1
        assert len(harness.leftovers()) == 1
        harness.registry.cancel(running)
        await until(running, lambda j: j.terminal)

    run(scenario)
    _wait_for(lambda: worker.active == 0)
    assert list(tmp_path.glob("upload-*")) == []


def test_results_are_kept_in_the_cache_and_found_after_a_restart(
    worker: Worker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "MAX_RESULTS_IN_MEMORY", 1)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    transcriber = ScriptedTranscriber(SEGMENTS, duration_s=6.2)
    ids: list[str] = []

    async def first_life() -> None:
        cache = ResultCache(cache_dir, ttl_s=3600, max_bytes=1 << 20)
        harness = Harness(worker, tmp_path, cache=cache)
        first = (await harness.submit(transcriber)).job
        await until(first, lambda j: j.terminal)
        assert cache.has(KEY)  # written before the job was reported done
        second = (await harness.submit(transcriber, key="b" * 64)).job
        await until(second, lambda j: j.terminal)
        assert first.result is None  # memory let it go; the cache still has it
        assert (await harness.registry.result(first)).segments == SEGMENTS
        ids.append(first.id)

    async def second_life() -> None:
        harness = Harness(
            worker, tmp_path, cache=ResultCache(cache_dir, ttl_s=3600, max_bytes=1 << 20)
        )
        again = await harness.submit(transcriber)
        assert (again.reuse, again.job.id, again.job.status) == ("cached", ids[0], "done")
        assert (await harness.registry.result(again.job)).segments == SEGMENTS
        assert harness.leftovers() == []  # the new upload was not needed

    async def third_life() -> None:
        harness = Harness(
            worker, tmp_path, cache=ResultCache(cache_dir, ttl_s=3600, max_bytes=1 << 20)
        )
        found = await harness.registry.find(ids[0])  # by id alone, as the jobs API asks
        assert (found.status, found.key) == ("done", KEY)
        assert (await harness.registry.result(found)).segments == SEGMENTS
        with pytest.raises(JobNotFoundError):
            await harness.registry.find("A" * 22)
        with pytest.raises(JobNotFoundError):
            await harness.registry.find("../../etc/passwd")

    run(first_life)
    run(second_life)
    run(third_life)
    assert transcriber.calls == 2  # only the first life ran anything


def _wait_for(condition: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(int(_WAIT_S / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not reached")
