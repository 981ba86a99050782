"""Server-Sent Events in OpenAI's transcription stream shape, fed by a job, talking while it waits.

One `transcript.text.delta` per segment (a late watcher gets the finished ones replayed first),
then `transcript.text.done` with the full text and usage, then `data: [DONE]`; on failure an
`error` event and no [DONE]. Between them, comments every client ignores:
`: queued position=N` while queued, `: progress 0.37 eta_s=410` while running (eta_s left out
while unknown), `: keep-alive` when there is nothing else to say; the stream is never silent
for longer than SSE_KEEPALIVE_S. The deltas concatenate to exactly done.text.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gigaam_api.formats import join_texts, segment_text, usage
from gigaam_api.server.errors import describe, error_body
from gigaam_api.server.intake import Watch
from gigaam_api.server.jobs import Job
from gigaam_api.server.registry import JobRegistry

KEEPALIVE = ": keep-alive\n\n"
DONE = "data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
POLL_S = 1.0
"""How often a waiting stream looks at its job's progress and queue place."""
PROGRESS_STEP = 0.01
"""A progress comment goes out when the fraction has grown by this much."""


def frame(data: dict[str, Any]) -> str:
    """One SSE event carrying compact UTF-8 JSON."""
    return f"data: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def delta_event(delta: str) -> str:
    return frame({"type": "transcript.text.delta", "delta": delta})


def done_event(text: str, duration_s: float) -> str:
    return frame({"type": "transcript.text.done", "text": text, "usage": usage(duration_s)})


def error_event(exc: BaseException) -> str:
    body = error_body(describe(exc))
    return frame({"type": "error", **body})


def queued_comment(position: int) -> str:
    return f": queued position={position}\n\n"


def progress_comment(fraction: float, eta_s: float | None) -> str:
    eta = "" if eta_s is None else f" eta_s={round(eta_s)}"
    return f": progress {fraction:.2f}{eta}\n\n"


class _Narrator:
    """Chooses the comment for a waiting stream: news when there is some, else a keep-alive."""

    def __init__(self, keepalive_s: float, position: Callable[[Job], int | None]) -> None:
        self._keepalive_s = keepalive_s
        self._position = position
        self._last_sent_s = time.monotonic()
        self._last_position: int | None = None
        self._last_fraction = -1.0

    def sent(self) -> None:
        self._last_sent_s = time.monotonic()

    def comment(self, job: Job) -> str | None:
        due = time.monotonic() - self._last_sent_s >= self._keepalive_s
        if job.status == "queued":
            position = self._position(job)
            if position is not None and (due or position != self._last_position):
                self._last_position = position
                return queued_comment(position)
        elif job.status == "running" and job.duration_s:
            progress = job.progress()
            if due or progress.fraction >= self._last_fraction + PROGRESS_STEP:
                self._last_fraction = progress.fraction
                return progress_comment(progress.fraction, progress.eta_s)
        return KEEPALIVE if due else None


async def iter_sse(
    watch: Watch,
    jobs: JobRegistry,
    *,
    keepalive_s: float,
    on_end: Callable[[], None] | None = None,
) -> AsyncIterator[str]:
    """The SSE text of a job from its first segment, until done, failure or the client leaving.

    Args:
        watch: the request's watch on the job (closed here at the end).
        jobs: the registry (queue places, and results read back from the cache).
        keepalive_s: the longest silence (SSE_KEEPALIVE_S).
        on_end: called once when the stream ends, however it ends.
    """
    job = watch.job
    narrator = _Narrator(keepalive_s, jobs.position)
    texts: list[str] = []
    sent = 0
    try:
        while not watch.gone:
            result = None
            try:
                if job.status == "done":
                    result = await jobs.result(job)
            except Exception as exc:
                yield error_event(exc)
                return
            fresh = (job.segments if result is None else result.segments)[sent:]
            sent += len(fresh)
            for segment in fresh:
                text = segment_text(segment)
                if text:
                    yield delta_event(text if not texts else f" {text}")
                    texts.append(text)
                    narrator.sent()
            if result is not None:
                yield done_event(join_texts(texts), result.duration_s)
                yield DONE
                return
            if job.error is not None:
                yield error_event(job.error)
                return
            comment = narrator.comment(job)
            if comment is not None:
                yield comment
                narrator.sent()
            await watch.wait(min(POLL_S, keepalive_s))
    finally:
        watch.close()
        if on_end is not None:
            on_end()
