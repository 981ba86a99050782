"""What one running server holds: settings, the model's loading state, the worker, the jobs, the
result cache and the upload dir.

The model loads in a background thread so the server answers at once; until it is ready, the
state says why not (downloading with progress, loading, or failed). No torch, no HTTP here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gigaam_api.errors import GigaamError, ModelLoadFailedError, ModelLoadingError
from gigaam_api.server.cache import ResultCache
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


class ModelState:
    """The loader thread writes it, requests read it; every access is under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: LoadStatus = "loading"
        self._transcriber: Transcriber | None = None
        self._progress: DownloadProgress | None = None
        self._error: str | None = None

    def snapshot(self) -> ModelSnapshot:
        with self._lock:
            return ModelSnapshot(self._status, self._transcriber, self._progress, self._error)

    def on_progress(self, progress: DownloadProgress) -> None:
        with self._lock:
            self._progress = progress

    def load(self, settings: Settings, factory: TranscriberFactory) -> None:
        """Build the transcriber (blocking; run it in a thread) and record the outcome."""
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
        with self._lock:
            self._status = "ok"
            self._transcriber = transcriber
        logger.info("Model %s loaded on %s", transcriber.model_id, transcriber.device)

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
    """The result cache, or why there is none (CACHE_DIR empty or unusable)."""

    cache: ResultCache | None
    problem: str | None


def open_cache(settings: Settings) -> CacheState:
    """Open CACHE_DIR; an unusable directory is logged and turns the cache off (D-084)."""
    if not settings.cache_dir:
        return CacheState(None, "CACHE_DIR is empty: results are kept in memory only")
    directory = Path(settings.cache_dir).expanduser()
    try:
        cache = ResultCache.open(
            directory,
            ttl_s=settings.cache_ttl_hours * 3600,
            max_bytes=settings.cache_max_mb * 1024 * 1024,
        )
    except OSError as exc:
        problem = (
            f"CACHE_DIR {directory} is not usable ({exc.strerror or exc}); results are kept "
            "in memory only. Set CACHE_DIR to a writable directory."
        )
        logger.warning("%s", problem)
        return CacheState(None, problem)
    return CacheState(cache, None)


@dataclass
class Runtime:
    """app.state.runtime: everything a request handler needs besides the request."""

    settings: Settings
    model: ModelState
    worker: Worker
    jobs: JobRegistry
    cache: CacheState
    upload_dir: Path

    def start_loading(self, factory: TranscriberFactory) -> threading.Thread:
        thread = threading.Thread(
            target=self.model.load, args=(self.settings, factory), name="gigaam-loader", daemon=True
        )
        thread.start()
        return thread
