"""FastAPI dependencies: the running server's Runtime and the bearer-key check.

Settings come from app.state (set by create_app), never from a cached global.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from gigaam_api.server.errors import AuthError
from gigaam_api.server.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_api_key(request: Request, runtime: RuntimeDep) -> None:
    """Check `Authorization: Bearer <API_KEY>` in constant time; an empty API_KEY disables it.

    Raises:
        AuthError: the header is missing, not Bearer, or carries another key (401).
    """
    expected = runtime.settings.api_key
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise AuthError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <API_KEY>'."
        )
    if not secrets.compare_digest(key.strip().encode(), expected.encode()):
        raise AuthError("Incorrect API key provided.")


ApiKeyDep = Depends(require_api_key)
