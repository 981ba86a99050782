"""The jobs API under /v1/audio/transcriptions/jobs: submit, follow, fetch in any format, cancel.

A submitted job runs whether or not anyone watches (only DELETE cancels it); it is the same kind
of job a sync or stream request runs, so the same audio and options are never transcribed twice.
Ids are unguessable; every route needs the API key (the router is included with it).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.requests import ClientDisconnect

from gigaam_api.server import sse
from gigaam_api.server.deps import RuntimeDep
from gigaam_api.server.forms import FORM_OPENAPI, parse_result_query
from gigaam_api.server.intake import Watch, take_job
from gigaam_api.server.logs import CLIENT_CLOSED_STATUS, request_log
from gigaam_api.server.views import job_status, result_response

router = APIRouter(prefix="/audio/transcriptions/jobs", tags=["jobs"])


class JobStatusObject(BaseModel):
    """The job status object (documentation of the JSON the routes return)."""

    id: str
    object: Literal["transcription.job"]
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created_at: int
    model: str
    queue_position: int | None
    """1 when the job runs next; null unless queued."""
    progress: float
    """0..1: settled audio seconds over the probed duration."""
    processed_s: float
    duration_s: float | None
    eta_s: float | None
    """Seconds until done at the rate so far; null while unknown."""
    error: dict[str, Any] | None
    """The OpenAI error object when failed or cancelled."""


_STATUS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"model": JobStatusObject},
    404: {"description": "No such job (or it expired)."},
}


@router.post(
    "",
    status_code=202,
    summary="Submit a transcription job (the same form as the OpenAI endpoint)",
    openapi_extra=FORM_OPENAPI,
    response_model=None,
    responses={202: {"model": JobStatusObject}},
)
async def submit_job(request: Request, runtime: RuntimeDep) -> Response:
    """202 with the status object and `Location`. The same audio and options as a queued,
    running or finished job give that job (and its id). Word timestamps are always computed,
    so any format can be fetched later; `stream` and `response_format` are not used here."""
    log = request_log(request)
    try:
        intake = await take_job(request, runtime, pinned=True)
    except ClientDisconnect:
        log.status_override = CLIENT_CLOSED_STATUS
        return Response(status_code=CLIENT_CLOSED_STATUS)
    job = intake.job
    log.model = job.model
    return JSONResponse(
        job_status(job, runtime.jobs),
        status_code=202,
        headers={"Location": f"{request.url.path}/{job.id}", "X-Job-Id": job.id},
    )


@router.get("/{job_id}", summary="A job's status, progress and ETA", responses=_STATUS_DOC)
async def get_job(job_id: str, runtime: RuntimeDep) -> JSONResponse:
    job = await runtime.jobs.find(job_id)
    return JSONResponse(job_status(job, runtime.jobs), headers={"X-Job-Id": job.id})


@router.get(
    "/{job_id}/events",
    summary="Follow a job as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {sse.MEDIA_TYPE: {}}}, 404: _STATUS_DOC[404]},
)
async def job_events(job_id: str, request: Request, runtime: RuntimeDep) -> StreamingResponse:
    """`transcript.text.delta` per segment (finished ones first), queue and progress comments,
    then `transcript.text.done` and `data: [DONE]`, or an `error` event. Leaving does not
    cancel the job."""
    job = await runtime.jobs.find(job_id)
    watch = Watch(runtime.jobs, job, request.receive, holds=False)
    return StreamingResponse(
        sse.iter_sse(watch, runtime.jobs, keepalive_s=runtime.settings.sse_keepalive_s),
        media_type=sse.MEDIA_TYPE,
        headers={"X-Job-Id": job.id, **sse.HEADERS},
    )


@router.get(
    "/{job_id}/result",
    summary="A finished job's transcript in any response format",
    responses={409: {"description": "Not finished yet (job_not_done), or cancelled."}},
)
async def job_result(job_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """`?response_format=json|text|verbose_json|srt|vtt` (default DEFAULT_RESPONSE_FORMAT) and
    `timestamp_granularities[]=word|segment`: exactly the OpenAI endpoint's body."""
    job = await runtime.jobs.find(job_id)
    fields: dict[str, list[str]] = {}
    for name, value in request.query_params.multi_items():
        fields.setdefault(name, []).append(value)
    query = parse_result_query(fields, runtime.settings.default_response_format)
    result = await runtime.jobs.result(job)
    headers = {"X-Model": job.model, "X-Job-Id": job.id}
    return result_response(result, query.response_format, query.granularities, headers)


@router.delete("/{job_id}", summary="Cancel a job", responses=_STATUS_DOC)
async def cancel_job(job_id: str, runtime: RuntimeDep) -> JSONResponse:
    """Cancels any job that has not ended (one a sync or stream request runs, too) and returns
    its status; a finished job is left as it is."""
    job = await runtime.jobs.find(job_id)
    runtime.jobs.cancel(job, "DELETE request")
    return JSONResponse(job_status(job, runtime.jobs), headers={"X-Job-Id": job.id})
