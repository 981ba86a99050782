"""BatchQueue: bounded hand-off, progress marks, the producer's end and errors, stop."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gigaam_api.errors import AudioTooLongError, TranscriptionCancelledError
from gigaam_api.pipeline.chunking import Chunk
from gigaam_api.pipeline.handoff import BatchQueue, ReadyBatch


def batch(start: int) -> ReadyBatch:
    chunk = Chunk(start, start + 10)
    return ReadyBatch((chunk,), (np.zeros(10, dtype=np.int16),))


def test_batches_come_out_in_order_then_none() -> None:
    queue = BatchQueue(max_ready=3)
    for start in (0, 100, 200):
        assert queue.put(batch(start))
    queue.finish()
    got = []
    while (ready := queue.get()) is not None:
        got.append(ready.chunks[0].start_sample)
        queue.task_done()
    assert got == [0, 100, 200]
    assert queue.get() is None


def test_put_waits_while_max_ready_batches_are_queued() -> None:
    queue = BatchQueue(max_ready=1)
    assert queue.put(batch(0))
    returned = threading.Event()

    def put_second() -> None:
        assert queue.put(batch(100))
        returned.set()

    putter = threading.Thread(target=put_second)
    putter.start()
    # a bounded queue keeps the second put waiting for as long as nobody takes; one second is
    # only how long a broken (unbounded) queue gets to show itself
    putter.join(timeout=1.0)
    assert putter.is_alive() and not returned.is_set()
    first = queue.get()
    assert first is not None and first.chunks[0].start_sample == 0
    putter.join(timeout=60)
    assert returned.is_set()
    second = queue.get()
    assert second is not None and second.chunks[0].start_sample == 100


def test_stop_releases_a_waiting_put_and_a_waiting_get() -> None:
    queue = BatchQueue(max_ready=1)
    assert queue.put(batch(0))
    put_results: list[bool] = []
    putter = threading.Thread(target=lambda: put_results.append(queue.put(batch(100))))
    putter.start()
    queue.stop()
    putter.join(timeout=60)
    assert put_results == [False] and queue.stopped
    with pytest.raises(TranscriptionCancelledError):
        queue.get()

    waiting = BatchQueue(max_ready=1)
    errors: list[BaseException] = []

    def take() -> None:
        try:
            waiting.get()
        except BaseException as exc:
            errors.append(exc)

    getter = threading.Thread(target=take)
    getter.start()
    waiting.stop()
    getter.join(timeout=60)
    assert not getter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TranscriptionCancelledError)


def test_the_producers_error_comes_after_the_batches_put_before_it() -> None:
    queue = BatchQueue(max_ready=2)
    queue.put(batch(0))
    error = AudioTooLongError(40.5, 40.0)
    queue.finish(error)
    first = queue.get()
    assert first is not None and first.chunks[0].start_sample == 0
    with pytest.raises(AudioTooLongError) as raised:
        queue.get()
    assert raised.value is error


def test_settled_sample_follows_the_batches_the_consumer_has_finished() -> None:
    queue = BatchQueue(max_ready=4)
    queue.settle(50)  # silence before any batch: settled at once
    assert queue.settled_sample == 50
    queue.put(batch(100))
    queue.settle(300)  # needs batch 1 out first
    queue.settle(250)  # a lower promise never moves progress back
    queue.put(batch(400))
    queue.settle(600)  # needs batches 1 and 2
    assert queue.settled_sample == 50
    queue.get()
    assert queue.settled_sample == 50  # taken, but its segments are not out yet
    queue.task_done()
    assert queue.settled_sample == 300
    queue.get()
    queue.task_done()
    assert queue.settled_sample == 600
    queue.settle(700)
    assert queue.settled_sample == 700


def test_max_ready_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BatchQueue(max_ready=0)
