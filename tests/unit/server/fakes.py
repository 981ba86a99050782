"""A scripted Transcriber for unit tests of the jobs, registry and SSE logic (no audio, no model),
a client whose disconnect a test triggers, and a wait for a job's state."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from starlette.types import Message

from gigaam_api.errors import TranscriptionCancelledError
from gigaam_api.server.jobs import Job
from gigaam_api.types import Segment, TranscribeOptions


async def until(job: Job, condition: Callable[[Job], bool]) -> None:
    """Wait for the job's state to satisfy `condition` (woken by its changes, no polling)."""
    changed = job.subscribe()
    try:
        while not condition(job):
            await changed.wait()
            changed.clear()
    finally:
        job.unsubscribe(changed)


class FakeClient:
    """An ASGI `receive` that answers `http.disconnect` once leave() is called."""

    def __init__(self) -> None:
        self._left = asyncio.Event()

    async def receive(self) -> Message:
        await self._left.wait()
        return {"type": "http.disconnect"}

    def leave(self) -> None:
        self._left.set()


class ScriptedRun:
    """Yields the given segments; raises `fail_with` after them; honours cancel per segment.

    With `step`, each segment waits until the test sets it (cancel is noticed while waiting).
    """

    def __init__(
        self,
        segments: Sequence[Segment],
        duration_s: float,
        cancel: threading.Event,
        fail_with: Exception | None,
        step: threading.Event | None,
    ) -> None:
        self._segments = segments
        self._duration_s = duration_s
        self._cancel = cancel
        self._fail_with = fail_with
        self._step = step
        self._processed_s = 0.0
        self.closed = False

    def __iter__(self) -> Iterator[Segment]:
        for segment in self._segments:
            if self._step is not None:
                while not self._step.wait(0.01):
                    if self._cancel.is_set():
                        raise TranscriptionCancelledError("cancelled")
                self._step.clear()
            if self._cancel.is_set():
                raise TranscriptionCancelledError("cancelled")
            self._processed_s = segment.end
            yield segment
        if self._fail_with is not None:
            raise self._fail_with
        self._processed_s = self._duration_s

    @property
    def duration_s(self) -> float:
        return self._duration_s

    @property
    def processed_s(self) -> float:
        return self._processed_s

    def close(self) -> None:
        self.closed = True


class ScriptedTranscriber:
    """transcribe() raises `probe_error` or returns a ScriptedRun over `segments`."""

    def __init__(
        self,
        segments: Sequence[Segment] = (),
        *,
        duration_s: float = 1.0,
        probe_error: Exception | None = None,
        fail_with: Exception | None = None,
        step: threading.Event | None = None,
    ) -> None:
        self.segments = segments
        self.duration_s = duration_s
        self.probe_error = probe_error
        self.fail_with = fail_with
        self.step = step
        self.runs: list[ScriptedRun] = []
        self.paths: list[Path] = []
        self.calls = 0

    @property
    def model_id(self) -> str:
        return "scripted"

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def engine(self) -> str:
        return "scripted"

    @property
    def precision(self) -> str:
        return "fp32"

    def transcribe(
        self, path: Path, options: TranscribeOptions, cancel: threading.Event
    ) -> ScriptedRun:
        self.calls += 1
        self.paths.append(path)
        if self.probe_error is not None:
            raise self.probe_error
        run = ScriptedRun(self.segments, self.duration_s, cancel, self.fail_with, self.step)
        self.runs.append(run)
        return run
