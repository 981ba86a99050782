"""What one running server holds: settings, the model's loading state, the worker, the jobs, the
result cache, the work dir and its disk room, the stop sequence and the metrics.

The model loads in a background thread so the server answers at once; until it is ready, the
state says why not (downloading with progress, loading, or failed). No torch, no HTTP here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gigaam_api.errors import GigaamError, ModelLoadFailedError, ModelLoadingError
from gigaam_api.server.cache import ResultCache
from gigaam_api.server.disk import DiskRoom, WorkDir
from gigaam_api.server.interrupted import InterruptedJobs
from gigaam_api.server.lifecycle import Lifecycle
from gigaam_api.server.metrics import Metrics, Snapshot
from gigaam_api.server.registry import JobRegistry
from gigaam_api.server.worker import Worker
from gigaam_api.settings import Settings
from gigaam_api.types import DownloadProgress, Transcriber

logger = logging.getLogger(__name__)

LOADING_RETRY_AFTER_S = 10

TranscriberFactory = Callable[[Settings, Callable[[DownloadProgress], None]], Transcriber]
"""Builds the transcriber (gigaam_api.bootstrap.build_transcriber in production)."""

LoadStatus = Literal["loading", "ok", "error"]


@dataclass(frozen=True)
class ModelSnapshot:
    status: LoadStatus
    transcriber: Transcriber | None
    progress: DownloadProgress | None
    error: str | None
    load_s: float | None
    """How long building the transcriber took (weights download included), once loaded."""


class ModelState:
    """The loader thread writes it, requests read it; every access is under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: LoadStatus = "loading"
        self._transcriber: Transcriber | None = None
        self._progress: DownloadProgress | None = None
        self._error: str | None = None
        self._load_s: float | None = None

    def snapshot(self) -> ModelSnapshot:
        with self._lock:
            return ModelSnapshot(
                self._status, self._transcriber, self._progress, self._error, self._load_s
            )

    def on_progress(self, progress: DownloadProgress) -> None:
        with self._lock:
            self._progress = progress

    def load(self, settings: Settings, factory: TranscriberFactory) -> None:
        """Build the transcriber (blocking; run it in a thread) and record the outcome."""
        started_s = time.perf_counter()
        try:
            transcriber = factory(settings, self.on_progress)
        except Exception as exc:
            if isinstance(exc, GigaamError):  # its message says what to do; a traceback wouldn't
                logger.error("Loading the model %r failed: %s", settings.model, exc)
            else:
                logger.exception("Loading the model %r failed", settings.model)
            with self._lock:
                self._status = "error"
                self._error = f"{type(exc).__name__}: {exc}"
            return
        load_s = time.perf_counter() - started_s
        with self._lock:
            self._status = "ok"
            self._transcriber = transcriber
            self._load_s = load_s
        logger.info(
            "Model %s loaded on %s (%s, %s) in %.1f s",
            transcriber.model_id,
            transcriber.device,
            transcriber.engine,
            transcriber.precision,
            load_s,
        )

    def ready(self) -> Transcriber:
        """The transcriber, or the error that explains why there is none yet.

        Raises:
            ModelLoadingError: still downloading or loading (retry after LOADING_RETRY_AFTER_S).
            ModelLoadFailedError: the load failed.
        """
        snapshot = self.snapshot()
        if snapshot.transcriber is not None:
            return snapshot.transcriber
        if snapshot.status == "error":
            raise ModelLoadFailedError(
                f"The model failed to load: {snapshot.error}. See /health and the server log."
            )
        raise ModelLoadingError(
            "The model is still loading; retry shortly (progress at /health).",
            retry_after_s=LOADING_RETRY_AFTER_S,
        )


@dataclass(frozen=True)
class CacheState:
    """The result cache and the interrupted-job records beside it, or why there are none
    (CACHE_DIR empty or unusable)."""

    cache: ResultCache | None
    problem: str | None
    interrupted: InterruptedJobs | None = None


def open_cache(settings: Settings) -> CacheState:
    """Open CACHE_DIR; an unusable directory is logged and turns the cache off (D-084)."""
    if not settings.cache_dir:
        return CacheState(None, "CACHE_DIR is empty: results are kept in memory only")
    directory = Path(settings.cache_dir).expanduser()
    ttl_s = settings.cache_ttl_hours * 3600
    try:
        cache = ResultCache.open(
            directory, ttl_s=ttl_s, max_bytes=settings.cache_max_mb * 1024 * 1024
        )
        interrupted = InterruptedJobs.open(directory, ttl_s=ttl_s)
    except OSError as exc:
        problem = (
            f"CACHE_DIR {directory} is not usable ({exc.strerror or exc}); results are kept "
            "in memory only. Set CACHE_DIR to a writable directory."
        )
        logger.warning("%s", problem)
        return CacheState(None, problem)
    return CacheState(cache, None, interrupted)


@dataclass
class Runtime:
    """app.state.runtime: everything a request handler needs besides the request."""

    settings: Settings
    model: ModelState
    worker: Worker
    jobs: JobRegistry
    cache: CacheState
    work: WorkDir
    room: DiskRoom
    lifecycle: Lifecycle
    metrics: Metrics
    _loader: threading.Thread | None = field(default=None, repr=False)

    @property
    def upload_dir(self) -> Path:
        return self.work.uploads

    def busy_threads(self) -> list[str]:
        """Our threads that may still be inside torch: the model loading, a batch running."""
        busy = ["the model loader"] if self._loader is not None and self._loader.is_alive() else []
        return busy + (["the worker"] if self.worker.thread_alive else [])

    def start_loading(self, factory: TranscriberFactory) -> threading.Thread:
        """Build the transcriber in a background thread; its temp files go to the work dir."""
        settings = self.settings.model_copy(update={"temp_dir": str(self.work.spool)})
        thread = threading.Thread(
            target=self.model.load, args=(settings, factory), name="gigaam-loader", daemon=True
        )
        thread.start()
        self._loader = thread
        return thread

    def metrics_snapshot(self) -> Snapshot:
        """The state /metrics reports, read now."""
        model = self.model.snapshot()
        transcriber = model.transcriber
        cache = self.cache.cache
        try:
            temp_free_bytes: int | None = self.room.free_bytes()
        except OSError:
            temp_free_bytes = None
        return Snapshot(
            model_status=model.status,
            model="" if transcriber is None else transcriber.model_id,
            engine=None if transcriber is None else transcriber.engine,
            precision=None if transcriber is None else transcriber.precision,
            device=None if transcriber is None else transcriber.device,
            load_s=model.load_s,
            stopping=self.lifecycle.stopping,
            queue_active=self.worker.active,
            queue_max=self.settings.max_queue,
            queue_waiting=len(self.worker.waiting()),
            running=0 if self.worker.current is None else 1,
            temp_free_bytes=temp_free_bytes,
            cache_entries=None if cache is None else len(cache),
            cache_bytes=None if cache is None else cache.size_bytes,
        )
