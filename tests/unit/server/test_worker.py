"""The worker: admission under MAX_QUEUE, FIFO order, queue places, withdrawal and stopping."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from gigaam_api.errors import QueueFullError
from gigaam_api.server.worker import Worker

_WAIT_S = 30.0


class Item:
    """A work item that records what happened to it; `hold` keeps it running until set."""

    def __init__(self, log: list[str], name: str, hold: threading.Event | None = None) -> None:
        self.log = log
        self.name = name
        self.hold = hold
        self.started = threading.Event()
        self.finished = threading.Event()

    def run(self) -> bool:
        self.started.set()
        if self.hold is not None:
            assert self.hold.wait(_WAIT_S)
        self.log.append(f"ran {self.name}")
        self.finished.set()
        return True

    def drop(self) -> None:
        self.log.append(f"dropped {self.name}")
        self.finished.set()


@pytest.fixture
def worker() -> Iterator[Worker]:
    running = Worker(max_queue=2)
    running.start()
    yield running
    running.stop()


def test_admission_counts_and_refuses_one_over(worker: Worker) -> None:
    first, second = worker.admit(), worker.admit()
    with pytest.raises(QueueFullError) as caught:
        worker.admit()
    assert caught.value.retry_after_s == 5
    first.release()
    first.release()  # idempotent
    assert worker.active == 1
    second.release()
    assert worker.active == 0


def test_items_run_in_order_and_report_their_place(worker: Worker) -> None:
    log: list[str] = []
    hold = threading.Event()
    first, second, third = Item(log, "a", hold), Item(log, "b"), Item(log, "c")
    assert worker.idle
    for item in (first, second, third):
        worker.submit(item)
    assert first.started.wait(_WAIT_S)
    assert not worker.idle
    assert worker.current is first
    assert (worker.position(first), worker.position(second), worker.position(third)) == (
        None,
        1,
        2,
    )
    assert worker.waiting() == [second, third]
    hold.set()
    assert third.finished.wait(_WAIT_S)
    assert log == ["ran a", "ran b", "ran c"]
    assert worker.completed == 3


def test_a_withdrawn_item_is_dropped_at_once_and_never_runs(worker: Worker) -> None:
    log: list[str] = []
    hold = threading.Event()
    running, waiting = Item(log, "a", hold), Item(log, "b")
    worker.submit(running)
    worker.submit(waiting)
    assert running.started.wait(_WAIT_S)
    assert worker.withdraw(waiting)
    assert not worker.withdraw(waiting)  # no longer waiting
    assert not worker.withdraw(running)  # running: only its own cancel stops it
    assert log == ["dropped b"]
    hold.set()
    assert running.finished.wait(_WAIT_S)
    assert log == ["dropped b", "ran a"]
    assert (worker.completed, worker.cancelled) == (1, 1)


def test_stop_drops_what_waits_and_refuses_more() -> None:
    worker = Worker(max_queue=4)
    log: list[str] = []
    worker.submit(Item(log, "queued before start"))
    worker.stop()  # the thread never started: nothing runs
    worker.submit(Item(log, "late"))
    assert log == ["dropped queued before start", "dropped late"]
