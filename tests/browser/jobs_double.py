"""TEMPORARY (branch ui only, never for main): the agreed jobs API (TEAM.md) on the real worker.

Stands in for branch `jobs` until it lands, so the page can be driven end to end now. It uses
the real upload parsing, worker, transcriber and formats; only the job bookkeeping is simplified.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from gigaam_api.formats import MEDIA_TYPES, render, segment_text
from gigaam_api.server import sse
from gigaam_api.server.deps import ApiKeyDep, RuntimeDep
from gigaam_api.server.errors import ApiError, describe, error_body
from gigaam_api.server.logs import request_log
from gigaam_api.server.routes import transcriptions
from gigaam_api.server.routes.transcriptions import _queue_job
from gigaam_api.server.worker import Failed, Finished, Job, SegmentReady, Started
from gigaam_api.types import Segment

_in_job = contextvars.ContextVar("in_job", default=False)
_plain_options = transcriptions._options


def _options(settings: Any, form: Any) -> Any:
    """Jobs always compute word timestamps (TEAM.md), so any format can be rendered later."""
    options = _plain_options(settings, form)
    return replace(options, word_timestamps=True) if _in_job.get() else options


transcriptions._options = _options


class _NotFound(ApiError):
    status_code = 404
    code = "not_found"


@dataclass
class _Entry:
    id: str
    job: Job
    created_at: float = field(default_factory=time.time)
    status: str = "queued"
    started_s: float | None = None
    duration_s: float | None = None
    segments: list[Segment] = field(default_factory=list)
    error: BaseException | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 1.0
        if not self.segments or not self.duration_s:
            return 0.0
        return min(1.0, self.segments[-1].end / self.duration_s)

    @property
    def eta_s(self) -> float | None:
        if self.status != "running" or self.started_s is None or self.progress <= 0:
            return None
        elapsed = time.monotonic() - self.started_s
        return round(elapsed / self.progress * (1 - self.progress), 1)


_jobs: dict[str, _Entry] = {}


def _position(entry: _Entry) -> int | None:
    if entry.status != "queued":
        return None
    ahead = [e for e in _jobs.values() if e.status == "queued" and e.created_at < entry.created_at]
    return len(ahead) + 1


def _status(entry: _Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "transcription.job",
        "status": entry.status,
        "created_at": int(entry.created_at),
        "model": entry.job.transcriber.model_id,
        "queue_position": _position(entry),
        "progress": entry.progress,
        "processed_s": entry.segments[-1].end if entry.segments else 0.0,
        "duration_s": entry.duration_s,
        "eta_s": entry.eta_s,
        "error": error_body(describe(entry.error))["error"] if entry.error else None,
    }


async def _pump(entry: _Entry) -> None:
    while entry.status in ("queued", "running"):
        event = await entry.job.next_event()
        if isinstance(event, Started):
            entry.status, entry.duration_s, entry.started_s = (
                "running",
                event.duration_s,
                time.monotonic(),
            )
        elif isinstance(event, SegmentReady):
            entry.segments.append(event.segment)
        elif isinstance(event, Finished):
            entry.status, entry.duration_s = "done", event.duration_s
        elif isinstance(event, Failed) and entry.status != "cancelled":
            entry.status, entry.error = "failed", event.error
        entry.touch()


def _entry(job_id: str) -> _Entry:
    if job_id not in _jobs:
        raise _NotFound(f"No job with id '{job_id}'.")
    return _jobs[job_id]


router = APIRouter(
    prefix="/v1/audio/transcriptions/jobs", dependencies=[ApiKeyDep], include_in_schema=False
)


@router.post("")
async def create(request: Request, runtime: RuntimeDep) -> JSONResponse:
    transcriber = runtime.model.ready()
    _in_job.set(True)
    job, _ = await _queue_job(request, runtime, transcriber, request_log(request))
    entry = _Entry(secrets.token_urlsafe(16), job)
    _jobs[entry.id] = entry
    entry.pump = asyncio.create_task(_pump(entry))  # type: ignore[attr-defined]
    return JSONResponse(_status(entry), status_code=202, headers={"X-Job-Id": entry.id})


@router.get("/{job_id}")
async def status(job_id: str) -> JSONResponse:
    return JSONResponse(_status(_entry(job_id)))


@router.delete("/{job_id}")
async def cancel(job_id: str) -> JSONResponse:
    entry = _entry(job_id)
    if entry.status in ("queued", "running"):
        entry.job.cancel.set()
        entry.status = "cancelled"
        entry.touch()
    return JSONResponse(_status(entry))


async def _events(entry: _Entry) -> AsyncIterator[str]:
    sent = 0
    while True:
        changed = entry.changed
        for segment in entry.segments[sent:]:
            text = segment_text(segment)
            if text:
                yield sse.delta_event(text if sent == 0 else f" {text}")
            sent += 1
        if entry.status == "done":
            yield sse.done_event("", entry.duration_s or 0.0)
            yield sse.DONE
            return
        if entry.status in ("failed", "cancelled"):
            yield sse.error_event(entry.error or ApiError("The job was cancelled."))
            return
        if entry.status == "queued":
            yield f": queued position={_position(entry)}\n\n"
        else:
            eta = entry.eta_s
            yield f": progress {entry.progress:.3f}" + (f" eta_s={eta}" if eta else "") + "\n\n"
        try:
            await asyncio.wait_for(changed.wait(), 15)
        except TimeoutError:
            yield sse.KEEPALIVE


@router.get("/{job_id}/events")
async def events(job_id: str) -> StreamingResponse:
    return StreamingResponse(_events(_entry(job_id)), media_type=sse.MEDIA_TYPE)


@router.get("/{job_id}/result")
async def result(job_id: str, request: Request) -> Response:
    entry = _entry(job_id)
    if entry.status != "done":
        body = error_body(describe(ApiError(f"The job is {entry.status}.")))
        return JSONResponse(body, status_code=409)
    response_format = request.query_params.get("response_format", "json")
    granularities = tuple(request.query_params.getlist("timestamp_granularities[]"))
    body_out = render(
        response_format,  # type: ignore[arg-type]
        entry.segments,
        entry.duration_s or 0.0,
        granularities,  # type: ignore[arg-type]
    )
    if isinstance(body_out, dict):
        return JSONResponse(body_out)
    return Response(body_out, media_type=MEDIA_TYPES[response_format])  # type: ignore[index]


def add_jobs_double(app: FastAPI) -> None:
    app.include_router(router)
