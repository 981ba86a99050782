"""GET /metrics (public, Prometheus text format) and the middleware that counts every request.

Requests are counted by route template (`/v1/audio/transcriptions/jobs/{job_id}`, never the
path a client sent, so ids never become labels), method and final status: the one the request
log writes, 499 when the client left before the answer was complete.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gigaam_api.server.deps import RuntimeDep
from gigaam_api.server.logs import request_log
from gigaam_api.server.metrics import CONTENT_TYPE
from gigaam_api.server.runtime import Runtime

router = APIRouter(tags=["health"])

UNMATCHED = "unmatched"
"""The route label of a path no template matches: a 404, or a page left out of the API schema."""


@router.get("/metrics", summary="Prometheus metrics (public)", response_class=Response)
def get_metrics(runtime: RuntimeDep) -> Response:
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)


def route_templates(app: FastAPI) -> list[tuple[re.Pattern[str], str]]:
    """Every path template the app serves: its OpenAPI paths, then its top-level routes and
    mounts (the docs pages, static files) by their own patterns."""
    templates = [(compile_path(path)[0], path) for path in app.openapi()["paths"]]
    for route in app.routes:
        regex, template = getattr(route, "path_regex", None), getattr(route, "path_format", None)
        if isinstance(regex, re.Pattern) and isinstance(template, str):
            templates.append((regex, template))
    return templates


class RequestMetricsMiddleware:
    """Pure ASGI: counts each HTTP request once its response (streamed or not) has ended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    def _route_label(self, scope: Scope) -> str:
        if self._templates is None:
            self._templates = route_templates(scope["app"])
        path = scope["path"]
        return next((name for regex, name in self._templates if regex.match(path)), UNMATCHED)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            runtime = getattr(scope["app"].state, "runtime", None)
            if isinstance(runtime, Runtime):
                override = request_log(Request(scope)).status_override
                runtime.metrics.observe_request(
                    self._route_label(scope), scope["method"], override or status
                )
