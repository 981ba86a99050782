"""Batch planning by count, by padded samples, and with a smaller first batch."""

from __future__ import annotations

import pytest

from gigaam_api.pipeline.batching import Batch, BatchPlanner
from gigaam_api.pipeline.chunking import Chunk


def chunks_of(*lengths: int) -> list[Chunk]:
    out: list[Chunk] = []
    position = 0
    for length in lengths:
        out.append(Chunk(position, position + length))
        position += length + 10
    return out


def plan_batches(
    chunks: list[Chunk],
    batch_size: int,
    *,
    max_samples: int = 0,
    first_batch_size: int | None = None,
) -> list[Batch]:
    """Every batch the streaming planner gives for a whole list of chunks, in order."""
    planner = BatchPlanner(batch_size, max_samples=max_samples, first_batch_size=first_batch_size)
    batches = [batch for chunk in chunks for batch in planner.add(chunk)]
    return batches + planner.finish()


def sizes(batches: list[tuple[Chunk, ...]]) -> list[int]:
    return [len(batch) for batch in batches]


@pytest.mark.parametrize(
    ("count", "batch_size", "first", "expected"),
    [
        (0, 4, None, []),
        (1, 4, None, [1]),
        (4, 4, None, [4]),
        (9, 4, None, [4, 4, 1]),
        (9, 4, 1, [1, 4, 4]),
        (6, 4, 2, [2, 4]),
        (3, 1, None, [1, 1, 1]),
        (5, 2, 8, [2, 2, 1]),
    ],
)
def test_batches_by_count(
    count: int, batch_size: int, first: int | None, expected: list[int]
) -> None:
    chunks = chunks_of(*([100] * count))
    batches = plan_batches(chunks, batch_size, first_batch_size=first)
    assert sizes(batches) == expected
    assert [c for batch in batches for c in batch] == chunks


def test_batches_capped_by_padded_samples() -> None:
    chunks = chunks_of(100, 100, 300, 50, 50, 500)
    batches = plan_batches(chunks, 8, max_samples=400)
    # rows x longest: [100, 100] = 200; adding 300 makes 900 > 400, so a new batch starts
    assert sizes(batches) == [2, 1, 2, 1]
    assert [c for batch in batches for c in batch] == chunks


def test_streaming_planner_hands_out_full_batches_at_once() -> None:
    planner = BatchPlanner(3, first_batch_size=1)
    chunks = chunks_of(10, 10, 10, 10, 10)
    assert sizes(planner.add(chunks[0])) == [1]
    assert planner.add(chunks[1]) == []
    assert planner.add(chunks[2]) == []
    assert planner.pending == (chunks[1], chunks[2])
    assert planner.add(chunks[3]) == [(chunks[1], chunks[2], chunks[3])]
    assert planner.add(chunks[4]) == []
    assert planner.finish() == [(chunks[4],)]
    assert planner.finish() == []


def test_batch_size_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        BatchPlanner(0)
