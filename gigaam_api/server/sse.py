"""Server-Sent Events in OpenAI's transcription stream shape, fed by a worker job.

One `transcript.text.delta` per segment, then `transcript.text.done` with the full text and
usage, then `data: [DONE]`; a comment keep-alive while a batch computes; on failure an error
event and no [DONE]. The deltas concatenate to exactly done.text. Knows no HTTP routing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from gigaam_api.formats import join_texts, segment_text, usage
from gigaam_api.server.errors import describe, error_body
from gigaam_api.server.worker import Disconnected, Failed, Finished, Job, SegmentReady

logger = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
KEEPALIVE = ": keep-alive\n\n"
DONE = "data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"


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


async def iter_sse(
    job: Job,
    *,
    keepalive_s: float = KEEPALIVE_S,
    on_end: Callable[[Finished | None, BaseException | None], None] | None = None,
) -> AsyncIterator[str]:
    """The SSE text of a started job, until done, failure or the client leaving.

    on_end(finished, error) is called once at the end (finished is None unless it completed).
    """
    texts: list[str] = []
    finished: Finished | None = None
    error: BaseException | None = None
    try:
        while True:
            event = await job.next_event(keepalive_s)
            if event is None:
                yield KEEPALIVE
            elif isinstance(event, SegmentReady):
                text = segment_text(event.segment)
                if text:
                    yield delta_event(text if not texts else f" {text}")
                    texts.append(text)
            elif isinstance(event, Finished):
                finished = event
                yield done_event(join_texts(texts), event.duration_s)
                yield DONE
                return
            elif isinstance(event, Failed):
                error = event.error
                logger.warning("stream failed mid-way: %s", event.error)
                yield error_event(event.error)
                return
            elif isinstance(event, Disconnected):
                return
    finally:
        job.cancel.set()  # no-op when finished; stops the run when the client left
        if on_end is not None:
            on_end(finished, error)
