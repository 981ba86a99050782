"""What a job looks like on the wire: the jobs API status object, /health's queue view, and a
finished result rendered as any OpenAI response format.

Progress and ETA come from Job.progress() (processed_s over the probed duration) everywhere.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response

from gigaam_api.formats import FORMATS, Granularity, ResponseFormat, render
from gigaam_api.server.errors import describe, error_body
from gigaam_api.server.jobs import Job, JobResult
from gigaam_api.server.registry import JobRegistry

JOB_OBJECT = "transcription.job"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def job_status(job: Job, jobs: JobRegistry) -> dict[str, Any]:
    """The status object of GET /v1/audio/transcriptions/jobs/{id} (and of POST and DELETE)."""
    progress = job.progress()
    return {
        "id": job.id,
        "object": JOB_OBJECT,
        "status": job.status,
        "created_at": int(job.created_at),
        "model": job.model,
        "queue_position": jobs.position(job),
        "progress": round(progress.fraction, 4),
        "processed_s": round(progress.processed_s, 3),
        "duration_s": _round(progress.duration_s),
        "eta_s": _round(progress.eta_s, 1),
        "error": None if job.error is None else error_body(describe(job.error))["error"],
    }


def queue_view(jobs: JobRegistry, active: int, max_queue: int) -> dict[str, Any]:
    """/health's queue: admitted requests, and each running or queued job without its id."""
    view: list[dict[str, Any]] = []
    for job in jobs.active():
        progress = job.progress()
        view.append(
            {
                "status": job.status,
                "queue_position": jobs.position(job),
                "progress": round(progress.fraction, 4),
                "processed_s": round(progress.processed_s, 3),
                "duration_s": _round(progress.duration_s),
                "eta_s": _round(progress.eta_s, 1),
            }
        )
    return {"active": active, "max": max_queue, "jobs": view}


def result_response(
    result: JobResult,
    response_format: ResponseFormat,
    granularities: tuple[Granularity, ...],
    headers: dict[str, str],
) -> Response:
    """The body the OpenAI endpoint gives for this format."""
    body = render(response_format, result.segments, result.duration_s, granularities)
    if isinstance(body, dict):
        return JSONResponse(body, headers=headers)
    return Response(body, media_type=FORMATS[response_format].media_type, headers=headers)
