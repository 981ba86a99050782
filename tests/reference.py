"""Independent references the tests compare production code against.

Each is written from a documented rule and shares no code with gigaam_api, so a test that finds
both equal is not comparing the code with itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from gigaam_api.types import SAMPLE_RATE, ChunkingOptions

Span = tuple[int, int]


def merge_regions(
    regions: Iterable[Span], options: ChunkingOptions, audio_samples: int | None = None
) -> list[Span]:
    """Upstream GigaAM's merge of speech regions into chunks, line by line as docs/gigaam.md §8
    states it, in samples (each limit rounded to whole samples).

    A region is clamped into the audio. While a chunk is pending, a region flushes it when the
    chunk is longer than new_chunk_threshold and either the region would stretch it past
    max_duration or it is already longer than min_duration; a flushed chunk longer than
    strict_limit is cut into n = length // strict_limit + 1 equal contiguous pieces. At the end
    the pending chunk is flushed unless it is no longer than new_chunk_threshold.
    """
    max_len = round(options.max_duration_s * SAMPLE_RATE)
    min_len = round(options.min_duration_s * SAMPLE_RATE)
    strict = round(options.strict_limit_s * SAMPLE_RATE)
    threshold = round(options.new_chunk_threshold_s * SAMPLE_RATE)
    chunks: list[Span] = []

    def flush(start: int, end: int) -> None:
        length = end - start
        if length <= strict:
            chunks.append((start, end))
            return
        pieces = length // strict + 1
        for k in range(pieces):
            chunks.append((start + length * k // pieces, start + length * (k + 1) // pieces))

    current_start = current_end = 0
    for start, end in regions:
        start = max(start, 0)
        if audio_samples is not None:
            end = min(end, audio_samples)
        current_length = current_end - current_start
        if current_length == 0:
            current_start = start
        elif current_length > threshold and (
            end - current_start > max_len or current_length > min_len
        ):
            flush(current_start, current_end)
            current_start = start
        current_end = end
    if current_end - current_start > threshold:
        flush(current_start, current_end)
    return chunks
