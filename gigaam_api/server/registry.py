"""Which job answers a request: by key for every transcription, by id for the jobs API.

A request whose audio and options (its key) match a queued, running or finished job attaches
to it; a finished one may also come from the result cache; otherwise a new job is queued. The
registry counts who waits for each job and cancels one nobody waits for after JOB_GRACE_S.
Finished jobs stay findable by id while in memory or in the cache; jobs a stopping server
cancelled stay findable (as cancelled) through their interrupted-job records. Event loop only;
no HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gigaam_api.errors import (
    GigaamError,
    JobNotDoneError,
    JobNotFoundError,
    TranscriptionCancelledError,
)
from gigaam_api.server.cache import CachedResult, ResultCache
from gigaam_api.server.interrupted import InterruptedJob, InterruptedJobs
from gigaam_api.server.jobs import Job, JobResult, JobRun
from gigaam_api.server.worker import Slot, Worker, stopping_error
from gigaam_api.types import TranscribeOptions, Transcriber

logger = logging.getLogger(__name__)

MAX_FINISHED_JOBS = 256
"""Finished jobs remembered in memory (older ones only through the cache)."""
MAX_RESULTS_IN_MEMORY = 8
"""Transcripts kept in memory; older ones are read back from the cache when asked for."""
_ID_BYTES = 16
_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")

Reuse = Literal["new", "attached", "cached"]


def new_job_id() -> str:
    """128 random bits, URL-safe: unguessable, so knowing an id is the right to see the job."""
    return secrets.token_urlsafe(_ID_BYTES)


@dataclass(frozen=True)
class JobSpec:
    """What a new job needs besides its upload and slot."""

    key: str
    model: str
    transcriber: Transcriber
    options: TranscribeOptions


@dataclass(frozen=True)
class Acquired:
    job: Job
    reuse: Reuse
    starts_at_once: bool
    """Nothing was running or queued: the job starts now (so its probe will answer soon)."""


class JobRegistry:
    """All jobs this server knows, with the worker that runs them and the cache behind them."""

    def __init__(
        self,
        worker: Worker,
        cache: ResultCache | None,
        *,
        grace_s: float,
        loop: asyncio.AbstractEventLoop,
        interrupted: InterruptedJobs | None = None,
        on_end: Callable[[Job], None] | None = None,
    ) -> None:
        """`on_end` hears of every job this server ran (or queued) once it ends."""
        self._worker = worker
        self._cache = cache
        self._interrupted = interrupted
        self._on_end = on_end
        self._grace_s = grace_s
        self._loop = loop
        self._stopping = False
        self._jobs: dict[str, Job] = {}
        self._by_key: dict[str, Job] = {}
        self._finished: OrderedDict[str, Job] = OrderedDict()
        self._results: OrderedDict[str, Job] = OrderedDict()

    # -------------------------------------------------------------------- finding jobs

    async def acquire(self, spec: JobSpec, path: Path, slot: Slot, *, pinned: bool) -> Acquired:
        """The job for this key: an existing one, a cached result, or a new job on the queue.

        Takes ownership of `path` and `slot`: a new job keeps them until it ends; when the
        request attaches to an existing job, the upload is deleted and the slot freed at once.
        """
        job = self._attach(spec.key)
        reuse: Reuse = "attached"
        if job is None and self._cache is not None:
            cached = await asyncio.to_thread(self._cache.get, spec.key)
            job = self._attach(spec.key)  # it may have been queued while we read the disk
            if job is None and cached is not None:
                job, reuse = self._adopt(cached), "cached"
        if job is not None:
            path.unlink(missing_ok=True)
            slot.release()
            job.pinned = job.pinned or pinned
            logger.info("job %s %s (%d requests)", job.id, reuse, job.requests)
            return Acquired(job, reuse, starts_at_once=False)
        if self._stopping:
            path.unlink(missing_ok=True)
            slot.release()
            raise stopping_error("takes no new work")
        starts_at_once = self._worker.idle
        job = Job(new_job_id(), spec.key, spec.model, on_end=self._ended)
        job.pinned = pinned
        job.run = JobRun(job, spec.transcriber, path, spec.options, slot, self._loop, self._persist)
        self._jobs[job.id] = job
        self._by_key[job.key] = job
        self._worker.submit(job.run)
        logger.debug("job %s queued (key %s)", job.id, job.key[:16])
        return Acquired(job, "new", starts_at_once)

    async def find(self, job_id: str) -> Job:
        """The job with this id, from memory or the cache.

        Raises:
            JobNotFoundError: no such job (or it expired).
        """
        job = self._jobs.get(job_id) if _ID.match(job_id) else None
        if job is None and self._cache is not None and _ID.match(job_id):
            cached = await asyncio.to_thread(self._cache.get_by_id, job_id)
            job = self._jobs.get(job_id)
            if job is None and cached is not None:
                job = self._adopt(cached)
        if job is None and self._interrupted is not None and _ID.match(job_id):
            record = await asyncio.to_thread(self._interrupted.get, job_id)
            job = self._jobs.get(job_id)
            if job is None and record is not None:
                job = self._adopt_interrupted(record)
        if job is None:
            raise JobNotFoundError(f"No transcription job with id '{job_id}' (or it expired).")
        return job

    async def result(self, job: Job) -> JobResult:
        """The finished transcript, read back from the cache if memory let it go.

        Raises:
            JobNotDoneError: still queued or running.
            JobNotFoundError: the transcript is no longer kept.
            Exception: the job's own error when it failed or was cancelled.
        """
        if job.error is not None:
            raise job.error
        if job.status != "done":
            raise JobNotDoneError(
                f"The transcription job '{job.id}' is {job.status}; its result is not ready."
            )
        if job.result is None:
            cached = None
            if self._cache is not None:
                cached = await asyncio.to_thread(self._cache.get, job.key)
            if job.result is None:
                if cached is None:
                    self._evict(job)
                    raise JobNotFoundError(f"The result of job '{job.id}' has expired.")
                job.attach_result(cached.result)
        self._keep_result(job)
        assert job.result is not None
        return job.result

    def position(self, job: Job) -> int | None:
        """1 when the job runs next; None when it is not waiting."""
        return None if job.run is None or job.status != "queued" else self._worker.position(job.run)

    def active(self) -> list[Job]:
        """The running job, then the queued ones in order."""
        items = [self._worker.current, *self._worker.waiting()]
        return [item.job for item in items if isinstance(item, JobRun)]

    # -------------------------------------------------------------------- who waits

    def hold(self, job: Job) -> None:
        """A client that may cancel the job by leaving starts waiting for it."""
        job.holders += 1
        if job.grace_timer is not None:
            job.grace_timer.cancel()
            job.grace_timer = None

    def release(self, job: Job) -> None:
        """A holding client stopped waiting (done, or disconnected)."""
        job.holders -= 1
        if job.holders > 0 or job.pinned or job.terminal:
            return
        if self._grace_s <= 0:
            self.cancel(job, "its last client disconnected")
            return
        logger.info("job %s: no client left; cancelling in %g s", job.id, self._grace_s)
        job.grace_timer = self._loop.call_later(self._grace_s, self._expire, job)

    def _expire(self, job: Job) -> None:
        job.grace_timer = None
        if job.holders == 0 and not job.pinned:
            self.cancel(job, f"no client came back within {self._grace_s:g} s")

    def cancel(self, job: Job, why: str = "asked to", error: GigaamError | None = None) -> None:
        """Cancel a job that has not ended: a queued one leaves the line at once."""
        if job.terminal:
            return
        logger.info("job %s cancelled: %s", job.id, why)
        job.cancel.set()
        if job.run is not None:
            self._worker.withdraw(job.run)
        job.mark_cancelled(error)

    def stop(self, *, queued_only: bool) -> int:
        """The server is stopping: cancel the queued jobs (and the running one unless
        `queued_only`), each with the error that tells its clients to retry, and record each
        so that its id still answers after a restart. Returns how many were cancelled."""
        self._stopping = True
        doomed = [
            job
            for job in self._jobs.values()
            if not job.terminal and (job.status == "queued" or not queued_only)
        ]
        for job in doomed:
            progress = job.progress()
            self.cancel(job, "the server is stopping", stopping_error("stopped this job first"))
            if self._interrupted is not None:
                self._interrupted.record(
                    InterruptedJob(
                        job.id,
                        job.key,
                        job.model,
                        job.created_at,
                        time.time(),
                        progress.processed_s,
                        progress.duration_s,
                    )
                )
        return len(doomed)

    # -------------------------------------------------------------------- internals

    def _attach(self, key: str) -> Job | None:
        job = self._by_key.get(key)
        if job is None or job.status in ("failed", "cancelled"):
            return None
        job.requests += 1
        return job

    def _adopt(self, cached: CachedResult) -> Job:
        job = Job.finished(
            cached.job_id, cached.key, cached.model, cached.result, cached.created_at
        )
        self._jobs[job.id] = job
        self._by_key[job.key] = job
        self._ended(job)
        return job

    def _adopt_interrupted(self, record: InterruptedJob) -> Job:
        error = TranscriptionCancelledError(
            f"The server stopped before transcription job '{record.job_id}' finished (it was "
            "queued or running at shutdown); submit the audio again."
        )
        job = Job.ended_unfinished(
            record.job_id,
            record.key,
            record.model,
            record.created_at,
            (record.processed_s, record.duration_s),
            error,
        )
        self._jobs[job.id] = job
        self._ended(job)
        return job

    def _persist(self, job: Job, result: JobResult) -> None:
        """Worker thread: store a finished result before anyone hears of it."""
        if self._cache is not None:
            self._cache.put(job.key, job.id, job.model, result)

    def _ended(self, job: Job) -> None:
        if job.status != "done" and self._by_key.get(job.key) is job:
            del self._by_key[job.key]  # a failed or cancelled job is run afresh next time
        if job.run is not None and self._on_end is not None:
            self._on_end(job)
        job.run = None
        self._finished[job.id] = job
        self._finished.move_to_end(job.id)
        while len(self._finished) > MAX_FINISHED_JOBS:
            self._evict(next(iter(self._finished.values())))
        if job.result is not None:
            self._keep_result(job)

    def _keep_result(self, job: Job) -> None:
        self._results[job.id] = job
        self._results.move_to_end(job.id)
        while len(self._results) > MAX_RESULTS_IN_MEMORY:
            _, oldest = self._results.popitem(last=False)
            if self._cache is not None and self._cache.has(oldest.key):
                oldest.drop_result()
            else:
                self._evict(oldest)  # without a copy on disk, the whole job goes

    def _evict(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        self._finished.pop(job.id, None)
        self._results.pop(job.id, None)
        if self._by_key.get(job.key) is job:
            del self._by_key[job.key]
