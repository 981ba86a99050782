"""Speech regions -> model-sized chunks by upstream GigaAM's merge rule (docs/gigaam.md §8), in
samples.

`ChunkPlanner` is fed regions as the VAD finalises them and hands out each chunk as soon as it is
decided, giving the chunks the rule gives on the whole list (tests/reference.py states the rule
on its own for the tests). Pure: no audio, no VAD, no model.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from gigaam_api.types import SAMPLE_RATE, ChunkingOptions, SampleSpan


@dataclass(frozen=True)
class Chunk(SampleSpan):
    """A stretch of audio sent to the model as one waveform: samples [start_sample, end_sample)."""


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


@dataclass(frozen=True)
class _Pending:
    """The chunk being grown: samples [start, end); length 0 means nothing is pending."""

    start: int = 0
    end: int = 0

    @property
    def length(self) -> int:
        return self.end - self.start


def _merge(
    pending: _Pending, start: int, end: int, limits: _Limits
) -> tuple[_Pending, list[Chunk]]:
    """Upstream's loop body for one region: grow the pending chunk or flush it and start anew."""
    flushed: list[Chunk] = []
    if pending.length == 0:
        pending = _Pending(start, start)
    elif pending.length > limits.new_chunk_samples and (
        end - pending.start > limits.max_samples or pending.length > limits.min_samples
    ):
        flushed = _split(pending.start, pending.end, limits)
        pending = _Pending(start, start)
    return _Pending(pending.start, end), flushed


class ChunkPlanner:
    """The same rule, incremental: chunks come out as soon as no later region can change them.

    A pending chunk is decided early when it is already longer than min_duration_s, or when
    the caller promises (`advance`) that no later region ends before a point that makes the
    next region exceed max_duration_s; either way the next region would have flushed it.
    """

    def __init__(self, options: ChunkingOptions, audio_samples: int | None = None) -> None:
        self._limits = _Limits.of(options)
        self._audio_samples = audio_samples
        self._pending = _Pending()

    @property
    def pending_start_sample(self) -> int | None:
        """Start of the chunk being grown (None when nothing is pending)."""
        return self._pending.start if self._pending.length != 0 else None

    def feed(self, raw_start: int, raw_end: int) -> list[Chunk]:
        """Add the next speech region; return the chunks this decided."""
        start, end = _clamp(raw_start, raw_end, self._audio_samples)
        self._pending, flushed = _merge(self._pending, start, end, self._limits)
        return flushed + self._flush_if_decided(None)

    def advance(self, no_region_ends_before_sample: int) -> list[Chunk]:
        """Learn that every later region ends after this sample; return chunks that decided."""
        return self._flush_if_decided(no_region_ends_before_sample)

    def finish(self) -> list[Chunk]:
        """No more regions: the pending chunk, unless it is too short to keep."""
        pending, self._pending = self._pending, _Pending()
        if pending.length > self._limits.new_chunk_samples:
            return _split(pending.start, pending.end, self._limits)
        return []

    def _flush_if_decided(self, bound: int | None) -> list[Chunk]:
        limits, pending = self._limits, self._pending
        if pending.length <= limits.new_chunk_samples:
            return []
        beyond_max = bound is not None and bound - pending.start >= limits.max_samples
        if not (pending.length > limits.min_samples or beyond_max):
            return []
        self._pending = _Pending()
        return _split(pending.start, pending.end, limits)
