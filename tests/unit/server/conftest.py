"""A running worker for the tests of jobs, the registry and SSE (stopped after each test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gigaam_api.server.worker import Worker


@pytest.fixture
def worker() -> Iterator[Worker]:
    running = Worker(max_queue=4)
    running.start()
    yield running
    running.stop()
