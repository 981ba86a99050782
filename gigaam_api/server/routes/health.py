"""GET /health: public liveness and readiness, with download progress while the model loads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from gigaam_api.server.deps import RuntimeDep
from gigaam_api.server.runtime import LOADING_RETRY_AFTER_S

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and readiness (public)")
def health(runtime: RuntimeDep) -> JSONResponse:
    """200 with the loaded model; 503 while loading (with progress) or after a load failure."""
    snapshot = runtime.model.snapshot()
    queue = {"active": runtime.worker.active, "max": runtime.settings.max_queue}
    if snapshot.transcriber is not None:
        return JSONResponse(
            {
                "status": "ok",
                "model": snapshot.transcriber.model_id,
                "device": snapshot.transcriber.device,
                "loaded": True,
                "queue": queue,
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
