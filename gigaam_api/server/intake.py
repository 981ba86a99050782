"""From a request to its job, and a request's view of that job while it waits.

`take_job` is shared by the OpenAI route and the jobs API: model ready (503) -> a queue slot
(503; also while the server stops) -> the upload under its deadlines and the disk's room (413,
408, 503) -> form fields and model name (400) -> the job key -> attach to a matching job or
queue a new one. `Watch` wakes a request when its job
changes or its client disconnects, and tells the registry when a holding client leaves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.types import Receive

from gigaam_api import __version__
from gigaam_api.server.forms import TranscriptionForm, check_model, parse_transcription_form
from gigaam_api.server.jobs import Job
from gigaam_api.server.registry import Acquired, JobRegistry, JobSpec
from gigaam_api.server.runtime import Runtime
from gigaam_api.server.uploads import UploadLimits, receive_upload
from gigaam_api.settings import Settings
from gigaam_api.types import TranscribeOptions, Transcriber

_MIB = 1024 * 1024
_KIB = 1024

RESULT_SETTINGS = ("model", "device", "quantize_int8")
"""Settings that change a transcript besides the per-call options. The engine and precision that
actually ran (float rounding differs between them) come from the transcriber itself."""
_NOT_IN_KEY = ("batch_size",)
"""Options that change speed, not the transcript (batched equals one by one, D-006)."""


def job_options(settings: Settings, form: TranscriptionForm) -> TranscribeOptions:
    """The options a request's job runs with; word timestamps always, so any format can be
    rendered from one result (D-081)."""
    options = settings.transcribe_options()
    if form.vad is not None:
        options = replace(options, vad=form.vad.apply(options.vad))
    return replace(options, word_timestamps=True)


def job_key(
    audio_sha256: str, transcriber: Transcriber, settings: Settings, options: TranscribeOptions
) -> str:
    """SHA-256 over the audio's hash and everything that changes its transcript (D-080)."""
    described = {
        "version": __version__,
        "audio_sha256": audio_sha256,
        "model_id": transcriber.model_id,
        "engine": [transcriber.engine, transcriber.precision],
        "settings": {name: getattr(settings, name) for name in RESULT_SETTINGS},
        "options": {
            name: value
            for name, value in dataclasses.asdict(options).items()
            if name not in _NOT_IN_KEY
        },
    }
    canonical = json.dumps(described, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Intake:
    """A request's job and its validated form."""

    acquired: Acquired
    form: TranscriptionForm
    transcriber: Transcriber

    @property
    def job(self) -> Job:
        return self.acquired.job


async def take_job(request: Request, runtime: Runtime, *, pinned: bool) -> Intake:
    """Admit the request, receive its upload and find or queue its job.

    Raises:
        UnavailableError: the model is not ready, the queue is full, the server is stopping
            or the disk is too full (503).
        UploadTooLargeError, UploadTimeoutError, InvalidFieldError, ModelNotAcceptedError.
        starlette.requests.ClientDisconnect: the client left during the upload.
    """
    settings = runtime.settings
    transcriber = runtime.model.ready()
    slot = runtime.worker.admit()
    try:
        limits = UploadLimits(
            max_bytes=settings.max_upload_mb * _MIB,
            idle_timeout_s=settings.upload_idle_timeout_s,
            min_rate_bytes_s=settings.upload_min_rate_kib_s * _KIB,
        )
        upload = await receive_upload(request, runtime.upload_dir, limits, runtime.room)
        assert upload.path is not None
        try:
            form = parse_transcription_form(upload.fields, settings.default_response_format)
            check_model(
                form.model, transcriber.model_id, settings.allowed_models, settings.model_aliases
            )
            options = job_options(settings, form)
            spec = JobSpec(
                job_key(upload.sha256, transcriber, settings, options),
                transcriber.model_id,
                transcriber,
                options,
            )
            # from here the registry owns the upload and the slot
            acquired = await runtime.jobs.acquire(spec, upload.path, slot, pinned=pinned)
        except BaseException:
            upload.discard()
            raise
    except BaseException:
        slot.release()
        raise
    return Intake(acquired, form, transcriber)


class Watch:
    """One request following one job: woken by the job's changes and by its client leaving.

    A holding watch counts as a client the job runs for (its disconnect starts the grace
    period); a jobs API watcher does not hold. close() is idempotent.
    """

    def __init__(self, jobs: JobRegistry, job: Job, receive: Receive, *, holds: bool) -> None:
        self.job = job
        self.gone = False
        self._jobs = jobs
        self._wake = job.subscribe()
        self._holds = holds
        if holds:
            jobs.hold(job)
        self._listener = asyncio.create_task(self._listen(receive))

    async def _listen(self, receive: Receive) -> None:
        """After the body, the next ASGI message can only be the client's disconnect."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self._let_go()
        self._wake.set()

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Until the job changes or the client leaves (True), or timeout_s passes (False)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except TimeoutError:
            return False
        finally:
            self._wake.clear()
        return True

    async def until_probed(self) -> None:
        """Until the job has opened its audio (or ended), or the client left."""
        while not (self.job.probed or self.gone):
            await self.wait()

    def _let_go(self) -> None:
        if self._holds:
            self._holds = False
            self._jobs.release(self.job)

    def close(self) -> None:
        self._listener.cancel()
        self.job.unsubscribe(self._wake)
        self._let_go()
