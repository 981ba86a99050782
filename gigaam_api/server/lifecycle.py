"""Stopping gracefully: what the server does between SIGTERM and its exit.

1. New work is refused (503 `server_shutting_down` with Retry-After) and /ready turns 503, so a
   load balancer sends the next requests elsewhere.
2. Queued jobs are cancelled at once with that same error: a waiting request gets the 503 (a
   proxy with `proxy_next_upstream http_503` hands it to another replica), a stream gets an
   `error` event, and each job's id is recorded so it answers `cancelled` after a restart.
3. The running job gets SHUTDOWN_GRACE_S to finish; then it is cancelled the same way.
4. The worker lets go of it within one batch: ffmpeg is killed and the spool removed.

server/serve.py runs this on the first signal and lets uvicorn close the connections afterwards;
the lifespan then removes the work dir. A second signal ends the grace period at once. No HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gigaam_api.server.registry import JobRegistry
from gigaam_api.server.worker import Worker

logger = logging.getLogger(__name__)

POLL_S = 0.05
RELEASE_WAIT_S = 3.0
"""How long the stop sequence waits for a cancelled job to let go (it does at its next check,
after the engine's current batch)."""


class Lifecycle:
    """The running server's stop sequence (event loop only)."""

    def __init__(self, worker: Worker, jobs: JobRegistry, *, grace_s: float) -> None:
        self._worker = worker
        self._jobs = jobs
        self._grace_s = grace_s
        self._hurried = False
        self.stopping = False
        self.may_abandon_batch = False
        """Set by whoever runs the process when it exits without Python's finalization
        (server/serve.py): then a cancelled job's last batch need not be waited for."""

    def hurry(self) -> None:
        """End the grace period now (a second signal)."""
        self._hurried = True

    async def stop(self) -> None:
        """Run the stop sequence (once); returns when no job runs any more."""
        if self.stopping:
            self.hurry()
            return
        self.stopping = True
        started_s = time.monotonic()
        self._worker.stop_admitting()
        queued = self._jobs.stop(queued_only=True)
        running = self._worker.current is not None
        logger.info(
            "Stopping: new work refused, %d queued job(s) cancelled; %s",
            queued,
            f"the running job has {self._grace_s:g} s to finish" if running else "no job runs",
        )
        if running and not await self._until_idle(started_s + self._grace_s, hurry=True):
            cancelled = self._jobs.stop(queued_only=False)
            logger.info("Grace period over: %d job(s) cancelled", cancelled)
            if not await self._until_idle(time.monotonic() + RELEASE_WAIT_S, hurry=False):
                logger.warning("The cancelled job is still in a batch after %g s", RELEASE_WAIT_S)
        logger.info("Stopped taking work after %.2f s", time.monotonic() - started_s)

    async def _until_idle(self, deadline_s: float, *, hurry: bool) -> bool:
        """Until the worker runs nothing (True), the deadline passes or, with `hurry`, a second
        signal comes (False)."""
        while self._worker.current is not None:
            if time.monotonic() >= deadline_s or (hurry and self._hurried):
                return False
            await asyncio.sleep(POLL_S)
        return True
