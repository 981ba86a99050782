"""The FastAPI application factory: `uvicorn --factory gigaam_api.server.app:create_app`.

The server listens at once; the model loads in a background thread (bootstrap imported lazily,
so this module never pulls in torch or numpy). Routers, auth, CORS, errors, logging and metrics
meet here. `gigaam-api serve` (server/serve.py) runs it with a graceful stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gigaam_api import __version__
from gigaam_api.server.deps import ApiKeyDep
from gigaam_api.server.disk import DiskRoom, WorkDir
from gigaam_api.server.errors import register_exception_handlers
from gigaam_api.server.lifecycle import Lifecycle
from gigaam_api.server.logs import RequestLogMiddleware, configure_logging
from gigaam_api.server.metrics import Metrics
from gigaam_api.server.registry import JobRegistry
from gigaam_api.server.routes import health, jobs, metrics, models, transcriptions, ui
from gigaam_api.server.runtime import ModelState, Runtime, TranscriberFactory, open_cache
from gigaam_api.server.uploads import CloseUnreadBodyMiddleware
from gigaam_api.server.worker import Worker
from gigaam_api.settings import Settings, load_settings
from gigaam_api.types import DownloadProgress, Transcriber

logger = logging.getLogger(__name__)


def _build_transcriber(
    settings: Settings, on_progress: Callable[[DownloadProgress], None]
) -> Transcriber:
    from gigaam_api.bootstrap import build_transcriber  # lazy: torch loads off the import path

    return build_transcriber(settings, on_progress)


def create_app(
    settings: Settings | None = None, *, transcriber_factory: TranscriberFactory | None = None
) -> FastAPI:
    """Build the app.

    Parameters:
        settings: defaults to load_settings() (environment and `.env`).
        transcriber_factory: builds the transcriber in the background loader thread; defaults to
            gigaam_api.bootstrap.build_transcriber.

    Raises:
        SettingsError: the settings are invalid, or MODEL is outside ALLOWED_MODELS.
    """
    settings = settings or load_settings()
    settings.check_served_model()
    configure_logging(settings.log_level, settings.log_json)
    factory = transcriber_factory or _build_transcriber

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        work = WorkDir.create(Path(settings.temp_dir) if settings.temp_dir else None)
        cache = open_cache(settings)
        worker = Worker(settings.max_queue)
        worker.start()
        app_metrics = Metrics()
        registry = JobRegistry(
            worker,
            cache.cache,
            grace_s=settings.job_grace_s,
            loop=asyncio.get_running_loop(),
            interrupted=cache.interrupted,
            on_end=app_metrics.observe_job,
        )
        runtime = Runtime(
            settings,
            ModelState(),
            worker,
            registry,
            cache,
            work,
            DiskRoom(work.path, settings.min_free_disk_mb * 1024 * 1024),
            Lifecycle(worker, registry, grace_s=settings.shutdown_grace_s),
            app_metrics,
        )
        app_metrics.track(runtime.metrics_snapshot)
        app.state.runtime = runtime
        runtime.start_loading(factory)
        logger.info("Listening; loading model %r in the background", settings.model)
        try:
            yield
        finally:
            if not runtime.lifecycle.stopping:  # plain uvicorn: no signal reached the app
                await runtime.lifecycle.stop()
            # A thread still inside torch when the interpreter finalizes aborts the process,
            # so its batch is waited for, unless serve.py will exit without finalizing.
            worker.stop(timeout_s=0 if runtime.lifecycle.may_abandon_batch else None)
            work.remove()

    app = FastAPI(
        title="gigaam-api",
        version=__version__,
        description="OpenAI-compatible speech-to-text for Russian on GigaAM.",
        lifespan=lifespan,
    )
    register_exception_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(transcriptions.router, prefix="/v1", dependencies=[ApiKeyDep])
    app.include_router(jobs.router, prefix="/v1", dependencies=[ApiKeyDep])
    app.include_router(models.router, prefix="/v1", dependencies=[ApiKeyDep])
    if settings.ui_enabled:
        ui.add_ui(app)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Retry-After", "X-Request-Id", "X-Model", "X-Job-Id", "Location"],
            max_age=600,
        )
    app.add_middleware(CloseUnreadBodyMiddleware)
    app.add_middleware(metrics.RequestMetricsMiddleware)
    app.add_middleware(RequestLogMiddleware)
    return app
