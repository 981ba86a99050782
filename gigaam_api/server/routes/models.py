"""GET /v1/models and /v1/models/{id} in OpenAI's list/object shape.

The list is the model this server runs (first) and the rest of ALLOWED_MODELS; `loaded: true`
marks the one whose weights are in memory. MODEL_ALIASES are accepted by /v1/models/{id} and the
transcription route but not listed (see D-100). Every listed id is a valid `model` value.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from gigaam_api.server.deps import RuntimeDep
from gigaam_api.server.errors import ModelNotFoundError
from gigaam_api.server.runtime import Runtime

router = APIRouter(tags=["models"])

_CREATED = int(time.time())
OWNER = "gigaam-api"


def _loaded_model(runtime: Runtime) -> str | None:
    transcriber = runtime.model.snapshot().transcriber
    return None if transcriber is None else transcriber.model_id


def _listed_models(runtime: Runtime) -> list[str]:
    served = _loaded_model(runtime) or runtime.settings.served_model
    return [served, *(name for name in runtime.settings.allowed_models if name != served)]


def _model_object(model_id: str, *, loaded: bool) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "created": _CREATED,
        "owned_by": OWNER,
        "loaded": loaded,
    }


@router.get("/models", summary="The served model first, then the rest of ALLOWED_MODELS")
def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    loaded = _loaded_model(runtime)
    return {
        "object": "list",
        "data": [_model_object(name, loaded=name == loaded) for name in _listed_models(runtime)],
    }


@router.get("/models/{model_id}", summary="One listed model, or an alias of the served one")
def get_model(model_id: str, runtime: RuntimeDep) -> dict[str, Any]:
    loaded = _loaded_model(runtime)
    if model_id in runtime.settings.model_aliases:
        return _model_object(model_id, loaded=loaded is not None)
    if model_id not in _listed_models(runtime):
        raise ModelNotFoundError(model_id)
    return _model_object(model_id, loaded=model_id == loaded)
