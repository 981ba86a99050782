"""GET /v1/models and /v1/models/{id} in OpenAI's list/object shape.

Lists what a request may name and really get: the loaded model and its aliases; other
ALLOWED_MODELS are accepted by the transcription route but never listed as available.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from gigaam_api.server.deps import RuntimeDep
from gigaam_api.server.errors import ModelNotFoundError
from gigaam_api.server.runtime import Runtime

router = APIRouter(tags=["models"])

_CREATED = int(time.time())
OWNER = "gigaam-api"


def _served_names(runtime: Runtime) -> list[str]:
    snapshot = runtime.model.snapshot()
    configured = runtime.settings.model
    loaded = (
        snapshot.transcriber.model_id
        if snapshot.transcriber is not None
        else Path(configured).stem
        if configured.endswith(".ckpt")
        else configured
    )
    return [loaded, *(alias for alias in runtime.settings.model_aliases if alias != loaded)]


def _model_object(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": OWNER}


@router.get("/models", summary="List the served model and its aliases")
def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    return {"object": "list", "data": [_model_object(name) for name in _served_names(runtime)]}


@router.get("/models/{model_id}", summary="One served model")
def get_model(model_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    if model_id not in _served_names(runtime):
        raise ModelNotFoundError(model_id)
    return _model_object(model_id)
