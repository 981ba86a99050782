"""POST /v1/audio/transcriptions: admit, stream the upload to disk, queue the job, answer.

Order of checks: model ready (503) -> a queue slot (503) -> upload under the cap (413) -> form
fields and model name (400) -> the worker probes the audio (400) -> a body or an SSE stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from gigaam_api.formats import FORMATS, RESPONSE_FORMATS, render
from gigaam_api.server import sse
from gigaam_api.server.deps import RuntimeDep
from gigaam_api.server.errors import error_response
from gigaam_api.server.forms import TranscriptionForm, check_model, parse_transcription_form
from gigaam_api.server.logs import CLIENT_CLOSED_STATUS, RequestLog, request_log
from gigaam_api.server.runtime import Runtime
from gigaam_api.server.uploads import receive_upload
from gigaam_api.server.worker import (
    Disconnected,
    Failed,
    Finished,
    Job,
    SegmentReady,
    Started,
)
from gigaam_api.settings import Settings
from gigaam_api.types import Segment, TranscribeOptions, Transcriber

router = APIRouter(tags=["audio"])

_MIB = 1024 * 1024

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "Audio or video file."},
        "model": {"type": "string", "description": "Loaded model, ALLOWED_MODELS or an alias."},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
        "timestamp_granularities[]": {
            "type": "array",
            "items": {"type": "string", "enum": ["word", "segment"]},
        },
        "language": {"type": "string", "description": "Accepted and ignored (Russian only)."},
        "prompt": {"type": "string", "description": "Accepted and ignored."},
        "temperature": {"type": "number", "description": "Accepted and ignored."},
        "stream": {"type": "boolean", "description": "SSE for json and text."},
        "chunking_strategy": {
            "type": "string",
            "description": '"auto" or {"type":"server_vad","threshold":0.5,...} as JSON',
        },
        "include[]": {"type": "array", "items": {"type": "string", "enum": ["logprobs"]}},
    },
}
_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}},
    }
}


def _options(settings: Settings, form: TranscriptionForm) -> TranscribeOptions:
    options = settings.transcribe_options()
    if form.vad is not None:
        options = replace(options, vad=form.vad.apply(options.vad))
    # untimed bodies (json, text) never show times, so skip computing them
    return replace(options, word_timestamps=FORMATS[form.response_format].timed)


async def _watch_disconnect(request: Request, job: Job) -> None:
    """After the body is read, the next ASGI message can only be the client's disconnect."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.abandon()
            return


def _client_gone(log: RequestLog) -> Response:
    log.status_override = CLIENT_CLOSED_STATUS
    return Response(status_code=CLIENT_CLOSED_STATUS)


async def _queue_job(
    request: Request, runtime: Runtime, transcriber: Transcriber, log: RequestLog
) -> tuple[Job, TranscriptionForm]:
    slot = runtime.worker.admit()
    submitted = False
    try:
        upload = await receive_upload(
            request, runtime.upload_dir, runtime.settings.max_upload_mb * _MIB
        )
        assert upload.path is not None
        try:
            form = parse_transcription_form(upload.fields, runtime.settings.default_response_format)
            check_model(
                form.model,
                transcriber.model_id,
                runtime.settings.allowed_models,
                runtime.settings.model_aliases,
            )
        except BaseException:
            upload.discard()
            raise
        log.response_format = form.response_format
        job = Job(
            transcriber,
            upload.path,
            _options(runtime.settings, form),
            slot,
            asyncio.get_running_loop(),
        )
        runtime.worker.submit(job)
        submitted = True
        return job, form
    finally:
        if not submitted:
            slot.release()


@router.post(
    "/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible)",
    openapi_extra=_OPENAPI,
    response_model=None,
)
async def create_transcription(request: Request, runtime: RuntimeDep) -> Response:
    log = request_log(request)
    transcriber = runtime.model.ready()
    log.model = transcriber.model_id
    try:
        job, form = await _queue_job(request, runtime, transcriber, log)
    except ClientDisconnect:
        return _client_gone(log)
    watcher = asyncio.create_task(_watch_disconnect(request, job))
    handed_over = False
    try:
        first = await job.next_event()
        if isinstance(first, Failed):
            return error_response(first.error)
        if not isinstance(first, Started):
            return _client_gone(log)
        log.audio_s = first.duration_s
        headers = {"X-Model": transcriber.model_id}
        if form.stream and not FORMATS[form.response_format].timed:
            handed_over = True
            return StreamingResponse(
                sse.iter_sse(job, on_end=lambda finished, _: _end_stream(watcher, log, finished)),
                media_type=sse.MEDIA_TYPE,
                headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _complete(job, form, log, headers)
    finally:
        if not handed_over:
            watcher.cancel()
            job.cancel.set()  # no-op when finished; stops the worker on any early exit


def _end_stream(watcher: asyncio.Task[None], log: RequestLog, finished: Finished | None) -> None:
    client_left = watcher.done() and not watcher.cancelled()
    watcher.cancel()
    if finished is not None:
        log.audio_s = finished.duration_s
        log.processing_s = finished.processing_s
    elif client_left:
        log.status_override = CLIENT_CLOSED_STATUS


async def _complete(
    job: Job, form: TranscriptionForm, log: RequestLog, headers: dict[str, str]
) -> Response:
    segments: list[Segment] = []
    while True:
        event = await job.next_event()
        if isinstance(event, SegmentReady):
            segments.append(event.segment)
        elif isinstance(event, Finished):
            log.audio_s = event.duration_s
            log.processing_s = event.processing_s
            body = render(form.response_format, segments, event.duration_s, form.granularities)
            if isinstance(body, dict):
                return JSONResponse(body, headers=headers)
            return Response(
                body, media_type=FORMATS[form.response_format].media_type, headers=headers
            )
        elif isinstance(event, Failed):
            return error_response(event.error)
        elif isinstance(event, Disconnected):
            return _client_gone(log)
