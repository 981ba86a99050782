"""The hand-off between a run's producer thread (decode, VAD, planning) and its consumer (the
thread iterating the run, which owns the engine): ready batches, progress, the end, errors.

Bounded, so the producer stays at most `max_ready` batches ahead of the engine (memory and spool
disk stay flat); stoppable from any thread; the producer's exception reaches the consumer after
the batches put before it. Knows nothing of audio, VAD or the model.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from gigaam_api.errors import TranscriptionCancelledError
from gigaam_api.pipeline.audio import Samples
from gigaam_api.pipeline.batching import Batch


@dataclass(frozen=True)
class ReadyBatch:
    """A batch of chunks with their int16 samples, read from the spool by the producer."""

    chunks: Batch
    samples: tuple[Samples, ...]


class BatchQueue:
    """Ready batches from one producer thread to one consumer, at most `max_ready` waiting.

    Progress: the producer calls `settle(sample)` to promise that every chunk before `sample`
    is in a batch already put; once the consumer has called `task_done()` for each of those
    batches (their segments are out), `settled_sample` reaches `sample`.

    Args:
        max_ready: most batches put and not yet taken (>= 1); `put` blocks beyond it.
    """

    def __init__(self, max_ready: int) -> None:
        if max_ready < 1:
            raise ValueError("max_ready must be >= 1")
        self._max_ready = max_ready
        self._condition = threading.Condition()
        self._ready: deque[ReadyBatch] = deque()
        self._put_count = 0
        self._done_count = 0
        # (batches put before the mark, sample): coalesced, so at most one per unfinished batch
        self._marks: deque[tuple[int, int]] = deque()
        self._settled_sample = 0
        self._finished = False
        self._error: BaseException | None = None
        self._stopped = False

    @property
    def settled_sample(self) -> int:
        """Every segment before this sample has been handed out (task_done); never decreases."""
        with self._condition:
            return self._settled_sample

    @property
    def stopped(self) -> bool:
        return self._stopped

    # producer side

    def put(self, batch: ReadyBatch) -> bool:
        """Queue a batch, waiting while `max_ready` are queued; False once stopped (drop it)."""
        with self._condition:
            while len(self._ready) >= self._max_ready and not self._stopped:
                self._condition.wait()
            if self._stopped:
                return False
            self._ready.append(batch)
            self._put_count += 1
            self._condition.notify_all()
            return True

    def settle(self, sample: int) -> None:
        """Every chunk that starts before `sample` is in a batch put already."""
        with self._condition:
            if self._marks and self._marks[-1][0] == self._put_count:
                sample = max(sample, self._marks[-1][1])
                self._marks.pop()
            self._marks.append((self._put_count, sample))
            self._advance()

    def finish(self, error: BaseException | None = None) -> None:
        """No more batches: the producer ended normally (None) or with `error`."""
        with self._condition:
            self._finished = True
            self._error = error
            self._condition.notify_all()

    # consumer side

    def get(self) -> ReadyBatch | None:
        """The next batch, waiting for it; None after the last one.

        Raises:
            Exception: the producer's error, once every batch put before it has been taken.
            TranscriptionCancelledError: the queue was stopped.
        """
        with self._condition:
            while not (self._ready or self._finished or self._stopped):
                self._condition.wait()
            if self._stopped:
                raise TranscriptionCancelledError("The transcription was cancelled.")
            if self._ready:
                batch = self._ready.popleft()
                self._condition.notify_all()
                return batch
            if self._error is not None:
                raise self._error
            return None

    def task_done(self) -> None:
        """The segments of the batch taken last are all out."""
        with self._condition:
            self._done_count += 1
            self._advance()

    def stop(self) -> None:
        """Give up (from any thread): a waiting put returns False, a waiting get raises."""
        with self._condition:
            self._stopped = True
            self._ready.clear()
            self._condition.notify_all()

    def _advance(self) -> None:
        while self._marks and self._marks[0][0] <= self._done_count:
            self._settled_sample = max(self._settled_sample, self._marks.popleft()[1])
