"""One transcription job, shared by every request for the same audio and options.

`JobRun` is the worker's side: it runs the Transcriber in the worker thread and hands what it
learns (began, probed, each segment, the end) to the event loop. `Job` is everyone else's side:
its state changes only on the event loop, which then wakes the job's watchers. Progress is read
live from the run's `processed_s`. Knows the Transcriber protocol; no HTTP, no formats.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gigaam_api.errors import GigaamError, TranscriptionCancelledError
from gigaam_api.progress import Progress, estimate
from gigaam_api.server.disk import is_out_of_space, out_of_space_error
from gigaam_api.server.worker import Slot
from gigaam_api.types import Segment, TranscribeOptions, Transcriber, Transcription

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
TERMINAL: tuple[JobStatus, ...] = ("done", "failed", "cancelled")


@dataclass(frozen=True)
class JobResult:
    """A finished transcript: what the cache keeps and every response format is rendered from."""

    segments: tuple[Segment, ...]
    duration_s: float
    processing_s: float


@dataclass(frozen=True)
class _Began:
    """The worker took the job (it probes the audio next)."""


@dataclass(frozen=True)
class _Probed:
    transcription: Transcription


@dataclass(frozen=True)
class _SegmentReady:
    segment: Segment


@dataclass(frozen=True)
class _Finished:
    result: JobResult


@dataclass(frozen=True)
class _Failed:
    error: BaseException


@dataclass(frozen=True)
class _Cancelled:
    pass


_Event = _Began | _Probed | _SegmentReady | _Finished | _Failed | _Cancelled


class Job:
    """A job's state as requests see it; read and changed on the event loop only.

    `requests` counts the requests that asked for it, `holders` those (sync or stream) whose
    disconnect may cancel it; `pinned` jobs (submitted through the jobs API) are never
    cancelled for want of holders. `cancel` is the Event the worker's run checks.
    """

    def __init__(
        self,
        job_id: str,
        key: str,
        model: str,
        *,
        created_at: float | None = None,
        on_end: Callable[[Job], None] | None = None,
    ) -> None:
        self.id = job_id
        self.key = key
        self.model = model
        self.created_at = time.time() if created_at is None else created_at
        self.status: JobStatus = "queued"
        self.segments: list[Segment] = []
        self.result: JobResult | None = None
        self.error: BaseException | None = None
        self.requests = 1
        self.holders = 0
        self.pinned = False
        self.cancel = threading.Event()
        self.run: JobRun | None = None
        self.grace_timer: asyncio.TimerHandle | None = None
        self._transcription: Transcription | None = None
        self._began_at: float | None = None
        self._duration_s: float | None = None
        self._last_processed_s = 0.0
        self._on_end = on_end
        self._watchers: set[asyncio.Event] = set()

    @classmethod
    def finished(
        cls, job_id: str, key: str, model: str, result: JobResult, created_at: float
    ) -> Job:
        """A job known only by its result (from the cache): done from the start."""
        job = cls(job_id, key, model, created_at=created_at)
        job.status = "done"
        job.attach_result(result)
        return job

    @classmethod
    def ended_unfinished(
        cls,
        job_id: str,
        key: str,
        model: str,
        created_at: float,
        progress: tuple[float, float | None],
        error: GigaamError,
    ) -> Job:
        """A job known only as cancelled before it finished (by a server that stopped).

        `progress` is (processed_s, duration_s) as they were when it stopped.
        """
        job = cls(job_id, key, model, created_at=created_at)
        job.status = "cancelled"
        job.error = error
        job._last_processed_s, job._duration_s = progress
        return job

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def probed(self) -> bool:
        """The worker has opened the audio (or the job already ended)."""
        return self._transcription is not None or self.terminal

    @property
    def duration_s(self) -> float | None:
        if self.result is not None:
            return self.result.duration_s
        if self._transcription is not None:
            return self._transcription.duration_s
        return self._duration_s

    def attach_result(self, result: JobResult) -> None:
        self.result = result
        self.segments = list(result.segments)
        self._duration_s = result.duration_s

    def drop_result(self) -> None:
        """Free the transcript's memory (the cache still has it)."""
        self.result = None
        self.segments = []

    def progress(self) -> Progress:
        """Fraction and ETA from the run's settled seconds and the probed duration."""
        duration_s = self.duration_s
        if self.status == "done":
            return Progress(1.0, duration_s or 0.0, duration_s, 0.0)
        transcription = self._transcription
        if transcription is None or self._began_at is None:
            return Progress(0.0, self._last_processed_s, duration_s, None)
        running_s = time.monotonic() - self._began_at
        return estimate(transcription.processed_s, transcription.duration_s, running_s)

    # -------------------------------------------------------------------- watchers

    def subscribe(self) -> asyncio.Event:
        """An Event set at every change of this job (the subscriber clears it)."""
        event = asyncio.Event()
        self._watchers.add(event)
        return event

    def unsubscribe(self, event: asyncio.Event) -> None:
        self._watchers.discard(event)

    def _changed(self) -> None:
        for event in self._watchers:
            event.set()

    # -------------------------------------------------------------------- state changes

    def apply(self, event: _Event) -> None:
        """Take one report of the worker's run (event loop only)."""
        if self.terminal:
            return  # cancelled on request: what the run says after that no longer counts
        if isinstance(event, _Began):
            self.status = "running"
            self._began_at = time.monotonic()
        elif isinstance(event, _Probed):
            self._transcription = event.transcription
        elif isinstance(event, _SegmentReady):
            self.segments.append(event.segment)
        elif isinstance(event, _Finished):
            self.attach_result(event.result)
            self._end("done")
            return
        elif isinstance(event, _Failed):
            self.error = event.error
            self._end("failed")
            return
        else:
            self.mark_cancelled()
            return
        self._changed()

    def mark_cancelled(self, error: GigaamError | None = None) -> None:
        """Cancelled, as of now; `error` says why to anyone waiting (default: cancelled on
        request). A running transcription is closed at once (its ffmpeg goes now; the worker
        lets go at its next check, within one batch)."""
        if self.terminal:
            return
        self.cancel.set()
        if self._transcription is not None:
            self._transcription.close()
        self.error = error or TranscriptionCancelledError("The transcription job was cancelled.")
        self._end("cancelled")

    def _end(self, status: JobStatus) -> None:
        if self._transcription is not None:
            self._last_processed_s = self._transcription.processed_s
            self._duration_s = self._transcription.duration_s
        self._transcription = None
        self.status = status
        if self.grace_timer is not None:
            self.grace_timer.cancel()
            self.grace_timer = None
        if self._on_end is not None:
            self._on_end(self)
        self._changed()


class JobRun:
    """The worker's side of a Job: the upload, the options and the queue slot it holds.

    `persist` is called in the worker thread with the finished result, before anyone is told
    the job is done (so a finished job is always already in the cache).
    """

    def __init__(
        self,
        job: Job,
        transcriber: Transcriber,
        path: Path,
        options: TranscribeOptions,
        slot: Slot,
        loop: asyncio.AbstractEventLoop,
        persist: Callable[[Job, JobResult], None],
    ) -> None:
        self.job = job
        self._transcriber = transcriber
        self._path = path
        self._options = options
        self._slot = slot
        self._loop = loop
        self._persist = persist

    def _report(self, event: _Event) -> None:
        """Hand an event to the event loop (from the worker thread; dropped after shutdown)."""
        try:
            self._loop.call_soon_threadsafe(self.job.apply, event)
        except RuntimeError:
            logger.debug("event loop closed; dropping %s", type(event).__name__)

    def _release(self) -> None:
        self._path.unlink(missing_ok=True)
        self._slot.release()

    def drop(self) -> None:
        self._release()
        self._report(_Cancelled())

    def run(self) -> bool:
        job = self.job
        if job.cancel.is_set():
            self.drop()
            return False
        logger.info("job %s started (key %s)", job.id, job.key[:16])
        self._report(_Began())
        started_s = time.perf_counter()
        outcome = self._transcribe(started_s)
        elapsed_s = time.perf_counter() - started_s
        self._release()  # before anyone hears of the end, so the slot is free by then
        self._report(outcome)
        if isinstance(outcome, _Finished):
            logger.info("job %s done in %.2f s", job.id, elapsed_s)
        elif isinstance(outcome, _Failed):
            logger.info("job %s failed after %.2f s: %s", job.id, elapsed_s, outcome.error)
        else:
            logger.info("job %s cancelled after %.2f s", job.id, elapsed_s)
        return not isinstance(outcome, _Cancelled)

    def _transcribe(self, started_s: float) -> _Finished | _Failed | _Cancelled:
        job = self.job
        try:
            transcription = self._transcriber.transcribe(self._path, self._options, job.cancel)
        except TranscriptionCancelledError:
            return _Cancelled()
        except Exception as exc:  # a typed AudioError at probe time, or a bug
            return self._failed(exc)
        self._report(_Probed(transcription))
        segments: list[Segment] = []
        try:
            for segment in transcription:
                if job.cancel.is_set():
                    return _Cancelled()
                segments.append(segment)
                self._report(_SegmentReady(segment))
            if job.cancel.is_set():
                return _Cancelled()
            result = JobResult(
                tuple(segments), transcription.duration_s, time.perf_counter() - started_s
            )
        except TranscriptionCancelledError:
            return _Cancelled()
        except Exception as exc:
            if job.cancel.is_set():  # closed from outside: any way out is a cancellation
                return _Cancelled()
            return self._failed(exc)
        finally:
            transcription.close()
        self._persist(job, result)
        return _Finished(result)

    def _failed(self, error: Exception) -> _Failed:
        if is_out_of_space(error):
            logger.warning("job %s: the disk is full (%s)", self.job.id, error)
            return _Failed(out_of_space_error())
        if not isinstance(error, GigaamError):
            logger.error("job %s hit an unexpected error", self.job.id, exc_info=error)
        return _Failed(error)
