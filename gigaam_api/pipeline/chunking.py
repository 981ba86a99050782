"""Speech regions -> model-sized chunks by upstream GigaAM's merge rule (facts §8.1), in samples.

Two forms of the same rule: `plan_chunks` on a whole list (the reference) and `ChunkPlanner`,
which is fed regions as the VAD finalises them and hands out each chunk as soon as it is decided.
Pure: no audio, no VAD, no model.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from gigaam_api.types import SAMPLE_RATE, ChunkingOptions


@dataclass(frozen=True)
class Chunk:
    """A stretch of audio sent to the model as one waveform: samples [start_sample, end_sample)."""

    start_sample: int
    end_sample: int

    @property
    def num_samples(self) -> int:
        return self.end_sample - self.start_sample

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end_sample / SAMPLE_RATE


@dataclass(frozen=True)
class _Limits:
    """ChunkingOptions in samples."""

    min_samples: int
    max_samples: int
    strict_samples: int
    new_chunk_samples: int

    @classmethod
    def of(cls, options: ChunkingOptions) -> _Limits:
        def to_samples(seconds: float) -> int:
            return round(seconds * SAMPLE_RATE)

        return cls(
            min_samples=to_samples(options.min_duration_s),
            max_samples=to_samples(options.max_duration_s),
            strict_samples=max(1, to_samples(options.strict_limit_s)),
            new_chunk_samples=to_samples(options.new_chunk_threshold_s),
        )


def _split(start: int, end: int, limits: _Limits) -> list[Chunk]:
    """One chunk, or n equal contiguous pieces when it is longer than the strict limit."""
    length = end - start
    if length <= limits.strict_samples:
        return [Chunk(start, end)]
    pieces = length // limits.strict_samples + 1
    bounds = [start + length * k // pieces for k in range(pieces + 1)]
    return [Chunk(a, b) for a, b in itertools.pairwise(bounds)]


def _clamp(start: int, end: int, audio_samples: int | None) -> tuple[int, int]:
    return max(0, start), end if audio_samples is None else min(end, audio_samples)


def plan_chunks(
    regions: Iterable[tuple[int, int]],
    options: ChunkingOptions,
    audio_samples: int | None = None,
) -> list[Chunk]:
    """Merge sorted speech regions (start, end samples) into chunks, upstream's loop as written.

    Args:
        regions: speech regions in time order.
        options: the merge thresholds.
        audio_samples: the audio's length, to clamp region ends (None = no clamp).

    Returns:
        Chunks in time order; silences between merged regions are inside a chunk, the trailing
        silence after the last region is not, and a leftover of at most new_chunk_threshold_s
        is dropped.
    """
    limits = _Limits.of(options)
    chunks: list[Chunk] = []
    current_start = current_end = current_length = 0
    for raw_start, raw_end in regions:
        start, end = _clamp(raw_start, raw_end, audio_samples)
        if current_length == 0:
            current_start = start
        elif current_length > limits.new_chunk_samples and (
            end - current_start > limits.max_samples or current_length > limits.min_samples
        ):
            chunks += _split(current_start, current_end, limits)
            current_start = start
        current_end = end
        current_length = current_end - current_start
    if current_length > limits.new_chunk_samples:
        chunks += _split(current_start, current_end, limits)
    return chunks


class ChunkPlanner:
    """The same rule, incremental: chunks come out as soon as no later region can change them.

    A pending chunk is decided early when it is already longer than min_duration_s, or when
    the caller promises (`advance`) that no later region ends before a point that makes the
    next region exceed max_duration_s; either way the next region would have flushed it.
    """

    def __init__(self, options: ChunkingOptions, audio_samples: int | None = None) -> None:
        self._limits = _Limits.of(options)
        self._audio_samples = audio_samples
        self._start = 0
        self._end = 0
        self._length = 0

    @property
    def pending_start_sample(self) -> int | None:
        """Start of the chunk being grown (None when nothing is pending)."""
        return self._start if self._length != 0 else None

    def feed(self, raw_start: int, raw_end: int) -> list[Chunk]:
        """Add the next speech region; return the chunks this decided."""
        start, end = _clamp(raw_start, raw_end, self._audio_samples)
        out: list[Chunk] = []
        limits = self._limits
        if self._length == 0:
            self._start = start
        elif self._length > limits.new_chunk_samples and (
            end - self._start > limits.max_samples or self._length > limits.min_samples
        ):
            out = _split(self._start, self._end, limits)
            self._start = start
        self._end = end
        self._length = self._end - self._start
        return out + self._flush_if_decided(None)

    def advance(self, no_region_ends_before_sample: int) -> list[Chunk]:
        """Learn that every later region ends after this sample; return chunks that decided."""
        return self._flush_if_decided(no_region_ends_before_sample)

    def finish(self) -> list[Chunk]:
        """No more regions: the pending chunk, unless it is too short to keep."""
        out: list[Chunk] = []
        if self._length > self._limits.new_chunk_samples:
            out = _split(self._start, self._end, self._limits)
        self._length = 0
        return out

    def _flush_if_decided(self, bound: int | None) -> list[Chunk]:
        limits = self._limits
        if self._length <= limits.new_chunk_samples:
            return []
        beyond_max = bound is not None and bound - self._start >= limits.max_samples
        if not (self._length > limits.min_samples or beyond_max):
            return []
        out = _split(self._start, self._end, limits)
        self._length = 0
        return out
