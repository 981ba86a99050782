"""GET /health and GET /ready, both public like /metrics.

/health: the process is alive, with the model's state (download progress while it loads), the
queue (each job's progress and ETA, never its id) and the result cache once it runs; 200 while
it runs, also while it stops (`"status": "stopping"`). /ready: whether to send it work now —
200 once the model is loaded, 503 with Retry-After while loading, after a load failure and from
the stop signal on (what a load balancer's health check should ask).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gigaam_api.server.deps import RuntimeDep
from gigaam_api.server.runtime import LOADING_RETRY_AFTER_S, Runtime
from gigaam_api.server.views import queue_view
from gigaam_api.server.worker import STOPPING_RETRY_AFTER_S

router = APIRouter(tags=["health"])


def _cache_view(runtime: Runtime) -> dict[str, Any]:
    cache = runtime.cache.cache
    if cache is None:
        return {"enabled": False, "problem": runtime.cache.problem}
    return {
        "enabled": True,
        "dir": str(cache.directory),
        "entries": len(cache),
        "size_mb": round(cache.size_bytes / (1024 * 1024), 1),
    }


@router.get("/health", summary="Liveness and readiness (public)")
async def health(runtime: RuntimeDep) -> JSONResponse:
    """200 with the loaded model; 503 while loading (with progress) or after a load failure."""
    snapshot = runtime.model.snapshot()
    if snapshot.transcriber is not None:
        return JSONResponse(
            {
                "status": "stopping" if runtime.lifecycle.stopping else "ok",
                "model": snapshot.transcriber.model_id,
                "device": snapshot.transcriber.device,
                "loaded": True,
                "queue": queue_view(
                    runtime.jobs, runtime.worker.active, runtime.settings.max_queue
                ),
                "cache": _cache_view(runtime),
            }
        )
    body: dict[str, Any] = {
        "status": snapshot.status,
        "model": runtime.settings.model,
        "loaded": False,
    }
    if snapshot.status == "error":
        body["error"] = snapshot.error
        return JSONResponse(body, status_code=503)
    progress = snapshot.progress
    body["progress"] = None
    if progress is not None:
        body["progress"] = {
            "file": progress.file_name,
            "done_bytes": progress.done_bytes,
            "total_bytes": progress.total_bytes,
            "percent": None
            if not progress.total_bytes
            else round(100 * progress.done_bytes / progress.total_bytes, 1),
        }
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(LOADING_RETRY_AFTER_S)})


@router.get("/ready", summary="Whether to send this server work now (public)")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """200 `{"status": "ready"}` when the model is loaded and no stop signal came; otherwise 503
    with `status` loading, error or stopping (and Retry-After unless the load failed)."""
    snapshot = runtime.model.snapshot()
    if runtime.lifecycle.stopping:
        return JSONResponse(
            {"status": "stopping"},
            status_code=503,
            headers={"Retry-After": str(STOPPING_RETRY_AFTER_S)},
        )
    if snapshot.transcriber is not None:
        return JSONResponse({"status": "ready", "model": snapshot.transcriber.model_id})
    headers = {} if snapshot.status == "error" else {"Retry-After": str(LOADING_RETRY_AFTER_S)}
    return JSONResponse({"status": snapshot.status}, status_code=503, headers=headers)
