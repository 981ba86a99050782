"""The server process (`gigaam-api serve`): uvicorn running the app, stopping gracefully.

uvicorn alone, on SIGTERM, stops listening and then waits for every open response to end — a
stream lasts as long as its job — before the app hears of it (lifespan shutdown); then it
raises the signal again so the process dies of it (exit status 143). Here the first SIGTERM or
SIGINT starts the app's own stop sequence (server/lifecycle.py) while the server still listens,
so new requests get 503 with Retry-After and /ready says so; once no job runs, uvicorn shuts
down with nothing left to wait for, and the process exits 0 — at once if the model is still
loading or the cancelled job is still inside a batch (os._exit: torch must not be finalized
under a running thread).
A second signal ends the grace period at once; a third exits without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from types import FrameType

import uvicorn
from fastapi import FastAPI

from gigaam_api.server.app import create_app
from gigaam_api.server.runtime import Runtime, TranscriberFactory
from gigaam_api.settings import Settings

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 3
"""After the stop sequence, how long uvicorn waits for connections still open (an upload in
progress) before it cancels them."""


class GracefulServer(uvicorn.Server):
    """uvicorn's Server with the app's stop sequence between the signal and the shutdown."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The signal handler (main thread, between two bytecodes): hand over to the loop.

        Unlike uvicorn's own, it does not note the signal for raising again at the end, so a
        graceful stop exits 0.
        """
        if self._loop is None:
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        runtime = getattr(self._app.state, "runtime", None)
        if not isinstance(runtime, Runtime):  # still starting up: nothing to drain
            self.should_exit = True
        elif self._stop_task is None:
            logger.info("%s received: stopping gracefully", name)
            runtime.lifecycle.may_abandon_batch = True
            self._stop_task = asyncio.get_running_loop().create_task(self._stop(runtime))
        elif not self.should_exit:
            logger.info("%s received again: cancelling the running job now", name)
            runtime.lifecycle.hurry()
        else:
            logger.info("%s received again: exiting without waiting", name)
            self.force_exit = True

    async def _stop(self, runtime: Runtime) -> None:
        try:
            await runtime.lifecycle.stop()
        finally:
            self.should_exit = True


def serve(settings: Settings, *, transcriber_factory: TranscriberFactory | None = None) -> None:
    """Run the server on HOST:PORT until a stop signal; returns once it has stopped cleanly."""
    app = create_app(settings, transcriber_factory=transcriber_factory)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # create_app() configured logging, uvicorn's loggers included
        access_log=False,  # the app writes its own line per request (request id, audio s, RTF)
        timeout_graceful_shutdown=CLOSE_TIMEOUT_S,
    )
    GracefulServer(config, app).run()
    runtime = getattr(app.state, "runtime", None)
    busy = runtime.busy_threads() if isinstance(runtime, Runtime) else []
    if busy:
        # The model still loading, or a cancelled job's last batch, runs inside torch:
        # finalizing the interpreter now would abort the process (std::terminate, exit 134).
        # Everything else is done: leave at once.
        logger.warning("Exiting while %s still works", " and ".join(busy))
        logging.shutdown()
        os._exit(0)
