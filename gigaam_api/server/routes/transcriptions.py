"""POST /v1/audio/transcriptions: the OpenAI endpoint, answered from a shared job.

The request finds or queues its job (server/intake.py), then answers one of three ways:
- `stream=true` (json, text): SSE at once, with queue and progress comments while it waits;
- json / verbose_json: the body when ready; a job still computing after SYNC_HEARTBEAT_S
  commits a 200 and sends a space at that interval until the body (D-082);
- text / srt / vtt: the body when ready.
A job that starts at once is first given its probe, so a bad file is still a plain 400 (D-083).
A client that leaves stops waiting; the job runs on for JOB_GRACE_S in case its retry comes back.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect

from gigaam_api.formats import FORMATS, render
from gigaam_api.server import sse
from gigaam_api.server.deps import RuntimeDep
from gigaam_api.server.errors import describe, error_body
from gigaam_api.server.forms import FORM_OPENAPI, TranscriptionForm
from gigaam_api.server.intake import Watch, take_job
from gigaam_api.server.jobs import JobResult
from gigaam_api.server.logs import CLIENT_CLOSED_STATUS, RequestLog, request_log
from gigaam_api.server.registry import JobRegistry
from gigaam_api.server.views import result_response

router = APIRouter(tags=["audio"])

_HEARTBEAT = b" "
"""Sent while a JSON body is computed: JSON ignores leading whitespace; text and subtitles
would not, so only JSON formats get heartbeats."""


def _log_result(log: RequestLog, result: JobResult) -> None:
    log.audio_s = result.duration_s
    log.processing_s = result.processing_s


def _client_gone(log: RequestLog) -> Response:
    log.status_override = CLIENT_CLOSED_STATUS
    return Response(status_code=CLIENT_CLOSED_STATUS)


@router.post(
    "/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible)",
    openapi_extra=FORM_OPENAPI,
    response_model=None,
)
async def create_transcription(request: Request, runtime: RuntimeDep) -> Response:
    log = request_log(request)
    try:
        intake = await take_job(request, runtime, pinned=False)
    except ClientDisconnect:
        return _client_gone(log)
    job, form = intake.job, intake.form
    log.model = job.model
    log.response_format = form.response_format
    headers = {"X-Model": job.model, "X-Job-Id": job.id}
    watch = Watch(runtime.jobs, job, request.receive, holds=True)
    handed_over = False
    try:
        if intake.acquired.starts_at_once:
            await watch.until_probed()
        if watch.gone:
            return _client_gone(log)
        if job.status == "failed" and job.error is not None:
            raise job.error
        if form.stream and not FORMATS[form.response_format].timed:
            handed_over = True
            return StreamingResponse(
                sse.iter_sse(
                    watch,
                    runtime.jobs,
                    keepalive_s=runtime.settings.sse_keepalive_s,
                    on_end=lambda: _end_stream(watch, runtime.jobs, log),
                ),
                media_type=sse.MEDIA_TYPE,
                headers={**headers, **sse.HEADERS},
            )
        heartbeat_s = runtime.settings.sync_heartbeat_s
        if FORMATS[form.response_format].media_type != "application/json":
            heartbeat_s = 0.0
        while not job.terminal:
            woke = await watch.wait(heartbeat_s or None)
            if watch.gone:
                return _client_gone(log)
            if not woke and not job.terminal:
                handed_over = True
                return StreamingResponse(
                    _heartbeats(watch, runtime.jobs, form, log, heartbeat_s),
                    media_type="application/json",
                    headers=headers,
                )
        result = await runtime.jobs.result(job)  # raises the job's error
        _log_result(log, result)
        return result_response(result, form.response_format, form.granularities, headers)
    finally:
        if not handed_over:
            watch.close()


def _end_stream(watch: Watch, jobs: JobRegistry, log: RequestLog) -> None:
    job = watch.job
    if job.status == "done":
        log.audio_s = job.duration_s
        if job.result is not None:
            log.processing_s = job.result.processing_s
    elif watch.gone:
        log.status_override = CLIENT_CLOSED_STATUS


async def _heartbeats(
    watch: Watch, jobs: JobRegistry, form: TranscriptionForm, log: RequestLog, interval_s: float
) -> AsyncIterator[bytes]:
    """A committed 200: spaces at `interval_s` until the JSON body, or an OpenAI error object
    when the job fails after all (its status can no longer change)."""
    job = watch.job
    answered = False
    try:
        yield _HEARTBEAT
        while not job.terminal and not watch.gone:
            if not await watch.wait(interval_s):
                yield _HEARTBEAT
        if watch.gone:
            return
        body: dict[str, Any] | str
        try:
            result = await jobs.result(job)
        except Exception as exc:
            body = error_body(describe(exc))
        else:
            _log_result(log, result)
            body = render(
                form.response_format, result.segments, result.duration_s, form.granularities
            )
        answered = True
        yield json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    finally:
        watch.close()
        if not answered:
            log.status_override = CLIENT_CLOSED_STATUS
