"""Upstream's merge rule in samples: table cases for the streaming planner and the independent
reference (tests/reference.py), and the two agree on random region streams."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gigaam_api.pipeline.chunking import Chunk, ChunkPlanner
from gigaam_api.types import SAMPLE_RATE, ChunkingOptions
from tests.reference import Span, merge_regions

SR = SAMPLE_RATE
DEFAULT = ChunkingOptions()


def s(seconds: float) -> int:
    return round(seconds * SR)


def regions_s(*pairs: tuple[float, float]) -> list[tuple[int, int]]:
    return [(s(a), s(b)) for a, b in pairs]


def chunks_s(chunks: list[Span]) -> list[tuple[float, float]]:
    """Chunk bounds in seconds, rounded to 1 ms for readable expectations."""
    return [(round(start / SR, 3), round(end / SR, 3)) for start, end in chunks]


def planned(
    regions: list[Span], options: ChunkingOptions, audio_samples: int | None = None
) -> list[Span]:
    """The streaming planner fed a whole list at once."""
    planner = ChunkPlanner(options, audio_samples)
    chunks: list[Chunk] = []
    for start, end in regions:
        chunks += planner.feed(start, end)
    chunks += planner.finish()
    return [(chunk.start_sample, chunk.end_sample) for chunk in chunks]


PLANNERS = [pytest.param(planned, id="planner"), pytest.param(merge_regions, id="reference")]
Plan = Callable[[list[Span], ChunkingOptions, int | None], list[Span]]


@pytest.mark.parametrize(
    ("regions", "audio_s", "expected"),
    [
        pytest.param([], None, [], id="empty"),
        pytest.param([(1.0, 4.0)], None, [(1.0, 4.0)], id="single"),
        pytest.param([(1.0, 1.15)], None, [], id="tiny-dropped"),
        pytest.param([(1.0, 1.2)], None, [], id="exactly-threshold-dropped"),
        pytest.param([(1.0, 1.1), (3.0, 4.0)], None, [(1.0, 4.0)], id="tiny-merged-into-next"),
        pytest.param(
            [(0.5, 3.0), (3.5, 8.0), (9.0, 14.0)], None, [(0.5, 14.0)], id="merge-with-gaps"
        ),
        pytest.param(
            [(0.0, 10.0), (10.5, 20.0), (21.0, 25.0)],
            None,
            [(0.0, 20.0), (21.0, 25.0)],
            id="new-chunk-past-max",
        ),
        pytest.param(
            [(0.0, 16.0), (16.2, 18.0)], None, [(0.0, 16.0), (16.2, 18.0)], id="flush-past-min"
        ),
        pytest.param(
            [(2.0, 62.0)],
            None,
            [(2.0, 22.0), (22.0, 42.0), (42.0, 62.0)],
            id="strict-limit-equal-split",
        ),
        pytest.param([(0.0, 30.0)], None, [(0.0, 30.0)], id="strict-limit-equal-kept"),
        pytest.param([(1.0, 5.0), (6.0, 9.0)], 60.0, [(1.0, 9.0)], id="trailing-silence-excluded"),
        pytest.param([(-0.5, 3.0), (4.0, 12.0)], 10.0, [(0.0, 10.0)], id="clamped-to-audio"),
    ],
)
@pytest.mark.parametrize("plan", PLANNERS)
def test_chunk_table(
    plan: Plan,
    regions: list[tuple[float, float]],
    audio_s: float | None,
    expected: list[tuple[float, float]],
) -> None:
    audio_samples = s(audio_s) if audio_s is not None else None
    assert chunks_s(plan(regions_s(*regions), DEFAULT, audio_samples)) == expected


@pytest.mark.parametrize("plan", PLANNERS)
def test_strict_split_pieces_are_contiguous_and_within_limit(plan: Plan) -> None:
    got = plan([(s(1.0), s(1.0) + 1_000_003)], DEFAULT, None)
    assert len(got) == 3
    assert got[0][0] == s(1.0) and got[-1][1] == s(1.0) + 1_000_003
    assert all(a[1] == b[0] for a, b in itertools.pairwise(got))
    lengths = [end - start for start, end in got]
    assert max(lengths) - min(lengths) <= 1
    assert max(lengths) <= s(DEFAULT.strict_limit_s)


@pytest.mark.parametrize("plan", PLANNERS)
def test_custom_options_change_the_merge(plan: Plan) -> None:
    options = ChunkingOptions(min_duration_s=2.0, max_duration_s=5.0, strict_limit_s=6.0)
    got = plan(regions_s((0.0, 3.0), (3.5, 4.0), (4.5, 13.0)), options, None)
    assert chunks_s(got) == [(0.0, 3.0), (3.5, 4.0), (4.5, 8.75), (8.75, 13.0)]


def test_planner_flushes_long_chunk_before_next_region() -> None:
    planner = ChunkPlanner(DEFAULT)
    assert planner.feed(s(0.0), s(10.0)) == []
    assert planner.feed(s(10.5), s(16.0)) == [Chunk(s(0.0), s(16.0))]
    assert planner.pending_start_sample is None
    assert planner.finish() == []


def test_planner_advance_flushes_once_max_is_certain() -> None:
    planner = ChunkPlanner(DEFAULT)
    assert planner.feed(s(1.0), s(5.0)) == []
    assert planner.advance(s(22.9)) == []
    assert planner.advance(s(23.0)) == [Chunk(s(1.0), s(5.0))]
    assert planner.finish() == []


@st.composite
def region_streams(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[int], int]:
    """Sorted non-overlapping regions, the audio length, and a promise bound before each one."""
    count = draw(st.integers(0, 25))
    position = draw(st.integers(0, s(2.0)))
    regions: list[tuple[int, int]] = []
    bounds: list[int] = []
    for _ in range(count):
        gap = draw(st.integers(0, s(40.0)))
        length = draw(st.integers(1, s(45.0)))
        start = position + gap
        # the caller may promise any point up to the next region's start (its end is later)
        bounds.append(draw(st.integers(position, start)))
        regions.append((start, start + length))
        position = start + length
    audio_samples = position + draw(st.integers(0, s(10.0)))
    return regions, bounds, audio_samples


@st.composite
def chunking_options(draw: st.DrawFn) -> ChunkingOptions:
    minimum = draw(st.floats(0.5, 20.0))
    maximum = draw(st.floats(minimum, 30.0))
    strict = draw(st.floats(maximum, 40.0))
    threshold = draw(st.floats(0.0, 1.0))
    return ChunkingOptions(minimum, maximum, strict, threshold)


@settings(max_examples=300, deadline=None)
@given(stream=region_streams(), options=chunking_options(), clamp=st.booleans())
def test_streaming_planner_equals_the_documented_rule(
    stream: tuple[list[tuple[int, int]], list[int], int], options: ChunkingOptions, clamp: bool
) -> None:
    regions, bounds, audio_samples = stream
    audio = audio_samples if clamp else None
    planner = ChunkPlanner(options, audio)
    streamed: list[Chunk] = []
    for (start, end), bound in zip(regions, bounds, strict=True):
        streamed += planner.advance(bound)
        streamed += planner.feed(start, end)
    streamed += planner.finish()
    spans = [(chunk.start_sample, chunk.end_sample) for chunk in streamed]
    assert spans == merge_regions(regions, options, audio)


@settings(max_examples=200, deadline=None)
@given(stream=region_streams())
def test_chunks_respect_limits_and_order(
    stream: tuple[list[tuple[int, int]], list[int], int],
) -> None:
    regions, _, audio_samples = stream
    chunks = planned(regions, DEFAULT, audio_samples)
    for start, end in chunks:
        assert s(DEFAULT.new_chunk_threshold_s) < end - start <= s(DEFAULT.strict_limit_s)
        assert 0 <= start < end <= audio_samples
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(chunks))
    # no region is lost, except a tail group too short to keep (the dropped leftover)
    covered = [any(start <= a < end for start, end in chunks) for a, _ in regions]
    if not all(covered):
        first_lost = covered.index(False)
        assert not any(covered[first_lost:])
        lost_samples = regions[-1][1] - regions[first_lost][0]
        assert lost_samples <= s(DEFAULT.new_chunk_threshold_s)
