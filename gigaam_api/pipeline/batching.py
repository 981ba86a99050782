"""Chunks -> batches for the engine: at most batch_size chunks, optionally capped in samples.

`BatchPlanner` works on a stream and can make the first batch smaller so the first segment of a
long file comes back after one chunk, not after a full batch. Pure: knows only Chunk.
"""

from __future__ import annotations

from gigaam_api.pipeline.chunking import Chunk

Batch = tuple[Chunk, ...]


class BatchPlanner:
    """Collects decided chunks and hands out full batches; `finish()` returns the remainder.

    Args:
        batch_size: most chunks per batch (>= 1).
        max_samples: most samples in a batch counted as batch rows x the longest chunk, i.e.
            what the zero-padded batch tensor holds (0 = no cap; a lone longer chunk still
            forms its own batch).
        first_batch_size: size of the first batch only (None = batch_size).
    """

    def __init__(
        self, batch_size: int, *, max_samples: int = 0, first_batch_size: int | None = None
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._batch_size = batch_size
        self._max_samples = max_samples
        self._next_size = max(1, min(first_batch_size or batch_size, batch_size))
        self._pending: list[Chunk] = []

    @property
    def pending(self) -> tuple[Chunk, ...]:
        """Chunks waiting for a batch, in order."""
        return tuple(self._pending)

    def add(self, chunk: Chunk) -> list[Batch]:
        """Queue a chunk; return the batches that are now complete."""
        out: list[Batch] = []
        if self._pending and not self._fits(chunk):
            out.append(self._take())
        self._pending.append(chunk)
        if len(self._pending) >= self._next_size:
            out.append(self._take())
        return out

    def finish(self) -> list[Batch]:
        """The last, possibly short, batch."""
        return [self._take()] if self._pending else []

    def _fits(self, chunk: Chunk) -> bool:
        if not self._max_samples:
            return True
        rows = len(self._pending) + 1
        longest = max(chunk.num_samples, *(c.num_samples for c in self._pending))
        return rows * longest <= self._max_samples

    def _take(self) -> Batch:
        batch, self._pending = tuple(self._pending), []
        self._next_size = self._batch_size
        return batch
