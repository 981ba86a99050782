"""The one inference thread: admission under MAX_QUEUE, FIFO jobs, events back to the event loop.

A slot is taken when a request arrives (before its upload is read) and given back when its job is
done or abandoned; setting a job's cancel Event stops it within one batch, and a cancelled job
still waiting in line is skipped. Knows the Transcriber protocol only: no HTTP, no formats.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gigaam_api.errors import TranscriptionCancelledError
from gigaam_api.server.errors import ServiceUnavailableError
from gigaam_api.types import Segment, TranscribeOptions, Transcriber

logger = logging.getLogger(__name__)

QUEUE_FULL_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class Started:
    """The audio was probed and accepted; the run begins (duration as probed)."""

    duration_s: float


@dataclass(frozen=True)
class SegmentReady:
    segment: Segment


@dataclass(frozen=True)
class Finished:
    duration_s: float
    processing_s: float


@dataclass(frozen=True)
class Failed:
    error: BaseException


@dataclass(frozen=True)
class Disconnected:
    """The HTTP client went away (posted by the request side, not by the worker)."""


JobEvent = Started | SegmentReady | Finished | Failed | Disconnected


class Slot:
    """One admitted request's place in MAX_QUEUE; release() is idempotent."""

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._on_release = on_release
        self._lock = threading.Lock()
        self._released = False

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._on_release()


class Job:
    """One transcription: the worker fills `events`, the request side reads them."""

    def __init__(
        self,
        transcriber: Transcriber,
        path: Path,
        options: TranscribeOptions,
        slot: Slot,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.transcriber = transcriber
        self.path = path
        self.options = options
        self.slot = slot
        self.cancel = threading.Event()
        self.events: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._loop = loop

    def emit(self, event: JobEvent) -> None:
        """Hand an event to the event loop (safe from any thread; dropped after shutdown)."""
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:
            logger.debug("event loop closed; dropping %s", type(event).__name__)

    async def next_event(self, timeout_s: float | None = None) -> JobEvent | None:
        """The next event, or None when timeout_s passes first."""
        try:
            return await asyncio.wait_for(self.events.get(), timeout_s)
        except TimeoutError:
            return None

    def abandon(self) -> None:
        """The client left: stop the run and wake whoever reads the events."""
        self.cancel.set()
        self.events.put_nowait(Disconnected())


class Worker:
    """A single daemon thread running jobs in arrival order."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self._active = 0
        self._lock = threading.Lock()
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="gigaam-worker", daemon=True)
        self._current: Job | None = None
        self.completed = 0
        """Jobs that ran to the end (success or a typed failure)."""
        self.cancelled = 0
        """Jobs stopped or skipped because their client left (or the server stopped)."""

    @property
    def active(self) -> int:
        """Admitted requests not yet finished: queued, uploading or running."""
        with self._lock:
            return self._active

    @property
    def running(self) -> bool:
        """Whether a job is being transcribed right now."""
        return self._current is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Cancel the running job, drop queued ones and join the thread."""
        current = self._current
        if current is not None:
            current.cancel.set()
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel.set()
                self._finish(job)
        self._jobs.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def admit(self) -> Slot:
        """Take a place for a new request.

        Raises:
            ServiceUnavailableError: MAX_QUEUE requests are already admitted (503, Retry-After).
        """
        with self._lock:
            if self._active >= self.max_queue:
                raise ServiceUnavailableError(
                    f"The server is busy: {self._active} transcriptions are queued or running "
                    f"(MAX_QUEUE={self.max_queue}). Retry later.",
                    code="queue_full",
                    retry_after_s=QUEUE_FULL_RETRY_AFTER_S,
                )
            self._active += 1
        return Slot(self._release)

    def _release(self) -> None:
        with self._lock:
            self._active -= 1

    def submit(self, job: Job) -> None:
        """Queue a job; from here on the worker owns its file and slot."""
        self._jobs.put(job)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._current = job
            try:
                if job.cancel.is_set() or not self._execute(job):
                    self.cancelled += 1
                else:
                    self.completed += 1
            finally:
                self._current = None
                self._finish(job)

    @staticmethod
    def _finish(job: Job) -> None:
        job.path.unlink(missing_ok=True)
        job.slot.release()

    @staticmethod
    def _execute(job: Job) -> bool:
        """Run one job, reporting through its events; False when it was cancelled."""
        started_s = time.perf_counter()
        try:
            transcription = job.transcriber.transcribe(job.path, job.options, job.cancel)
        except Exception as exc:  # a typed AudioError at probe time, or a bug
            job.emit(Failed(exc))
            return True
        try:
            job.emit(Started(transcription.duration_s))
            for segment in transcription:
                if job.cancel.is_set():
                    raise TranscriptionCancelledError("the client disconnected")
                job.emit(SegmentReady(segment))
            job.emit(Finished(transcription.duration_s, time.perf_counter() - started_s))
        except TranscriptionCancelledError as exc:
            logger.info("transcription cancelled after %.2f s", time.perf_counter() - started_s)
            job.emit(Failed(exc))
            return False
        except Exception as exc:
            job.emit(Failed(exc))
        finally:
            transcription.close()
        return True
