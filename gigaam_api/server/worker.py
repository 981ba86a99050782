"""The one inference thread: admission under MAX_QUEUE and a FIFO line of work items.

A slot is taken when a request arrives (before its upload is read) and given back when its work
is done, withdrawn or refused; so MAX_QUEUE counts uploads, queued and running work. The items
themselves (server/jobs.py) know what to run; this module knows only order, slots and the
thread. No HTTP, no transcription.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

from gigaam_api.errors import QueueFullError, ShuttingDownError

logger = logging.getLogger(__name__)

QUEUE_FULL_RETRY_AFTER_S = 5
STOPPING_RETRY_AFTER_S = 10


def stopping_error(what_happened: str) -> ShuttingDownError:
    """503 with Retry-After: the server is stopping; another replica or a restart will answer."""
    return ShuttingDownError(
        f"The server is shutting down and {what_happened}; retry the request (another server, "
        "or this one once it is back, will take it).",
        retry_after_s=STOPPING_RETRY_AFTER_S,
    )


class WorkItem(Protocol):
    """What the worker runs: `run` in the worker thread, `drop` when it will never run."""

    def run(self) -> bool:
        """Do the work; False when it was cancelled before or while running."""
        ...

    def drop(self) -> None:
        """Never run (withdrawn, or the server stops): report it and free what it holds."""
        ...


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


class Worker:
    """A single daemon thread running items in arrival order."""

    def __init__(self, max_queue: int) -> None:
        self.max_queue = max_queue
        self._active = 0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._line: deque[WorkItem] = deque()
        self._current: WorkItem | None = None
        self._stopping = False
        self._admitting = True
        self._thread = threading.Thread(target=self._run, name="gigaam-worker", daemon=True)
        self.completed = 0
        """Items that ran to an end (a result or a failure)."""
        self.cancelled = 0
        """Items stopped or never started because they were cancelled."""

    @property
    def active(self) -> int:
        """Admitted requests not yet finished: uploading, queued or running."""
        with self._lock:
            return self._active

    @property
    def current(self) -> WorkItem | None:
        """The item running now."""
        with self._lock:
            return self._current

    @property
    def idle(self) -> bool:
        """Nothing runs and nothing waits: a new item would start at once."""
        with self._lock:
            return self._current is None and not self._line

    def waiting(self) -> list[WorkItem]:
        """The queued items, next first."""
        with self._lock:
            return list(self._line)

    def position(self, item: WorkItem) -> int | None:
        """1 for the next item to run, 2 after it…; None when `item` is not waiting."""
        with self._lock:
            for index, queued in enumerate(self._line):
                if queued is item:
                    return index + 1
        return None

    @property
    def thread_alive(self) -> bool:
        """The worker thread has not ended (after stop(): a batch is still running)."""
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float | None = 10.0) -> None:
        """Drop the waiting items, let the running one see its cancel, and join the thread
        (for ever with `timeout_s=None`)."""
        with self._lock:
            self._stopping = True
            dropped = list(self._line)
            self._line.clear()
            self._ready.notify_all()
        for item in dropped:
            item.drop()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def stop_admitting(self) -> None:
        """Refuse every new request from now on (the server is stopping)."""
        with self._lock:
            self._admitting = False

    def admit(self) -> Slot:
        """Take a place for a new request.

        Raises:
            ShuttingDownError: the server is stopping (503 with Retry-After).
            QueueFullError: MAX_QUEUE requests are already admitted (503 with Retry-After).
        """
        with self._lock:
            if not self._admitting:
                raise stopping_error("takes no new work")
            if self._active >= self.max_queue:
                raise QueueFullError(
                    f"The server is busy: {self._active} transcriptions are queued or running "
                    f"(MAX_QUEUE={self.max_queue}). Retry later.",
                    retry_after_s=QUEUE_FULL_RETRY_AFTER_S,
                )
            self._active += 1
        return Slot(self._release)

    def _release(self) -> None:
        with self._lock:
            self._active -= 1

    def submit(self, item: WorkItem) -> None:
        """Put an item at the end of the line; it runs after everything queued before it."""
        with self._lock:
            if not self._stopping:
                self._line.append(item)
                self._ready.notify()
                return
        item.drop()

    def withdraw(self, item: WorkItem) -> bool:
        """Take a waiting item out of the line and drop it; False if it is not waiting."""
        with self._lock:
            try:
                self._line.remove(item)
            except ValueError:
                return False
            self.cancelled += 1
        item.drop()
        return True

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._line and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                item = self._current = self._line.popleft()
            finished = False
            try:
                finished = item.run()
            except Exception:  # run() reports its own failures; this is a bug in it
                logger.exception("a work item failed outside its own error handling")
                finished = True
            finally:
                with self._lock:
                    self._current = None
                    if finished:
                        self.completed += 1
                    else:
                        self.cancelled += 1
