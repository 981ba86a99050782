"""Decoded int16 samples kept on disk in fixed-length segment files, freed from the front.

The pipeline needs each sample twice (VAD first, the chunk slice later, possibly minutes later
when one VAD region runs long), so samples go to disk instead of RAM and each segment file is
deleted once no pending chunk can reach back into it. Knows nothing of VAD or chunks.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from gigaam_api.types import SAMPLE_RATE

DEFAULT_SEGMENT_SAMPLES = 30 * SAMPLE_RATE  # 960 KB files
_BYTES_PER_SAMPLE = 2


class SampleSpool:
    """Append-only int16 store with random reads and release of everything before a sample.

    Args:
        parent_dir: where the spool's private temporary directory is made (None = system temp).
        segment_samples: samples per segment file.
    """

    def __init__(
        self, parent_dir: Path | None = None, segment_samples: int = DEFAULT_SEGMENT_SAMPLES
    ) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="gigaam-spool-", dir=parent_dir))
        self._segment_samples = segment_samples
        self._total = 0
        self._first_kept = 0  # index of the oldest segment not yet deleted
        self._writer: BinaryIO | None = None
        self._writer_index = -1
        self._closed = False

    @property
    def total_samples(self) -> int:
        return self._total

    @property
    def released_before_sample(self) -> int:
        """Samples before this one are gone."""
        return self._first_kept * self._segment_samples

    def _path(self, index: int) -> Path:
        return self.directory / f"{index:08d}.s16"

    def append(self, samples: npt.NDArray[np.int16]) -> None:
        """Add samples at the end."""
        if self._closed:
            raise RuntimeError("SampleSpool.append() after close()")
        data = np.ascontiguousarray(samples, dtype=np.int16)
        offset = 0
        while offset < len(data):
            index, position = divmod(self._total, self._segment_samples)
            take = min(len(data) - offset, self._segment_samples - position)
            if index != self._writer_index:
                self._close_writer()
                # unbuffered, so reads through np.fromfile see every sample at once
                self._writer = open(self._path(index), "ab", buffering=0)  # noqa: SIM115
                self._writer_index = index
            assert self._writer is not None
            self._writer.write(data[offset : offset + take].tobytes())
            offset += take
            self._total += take

    def read(self, start_sample: int, end_sample: int) -> npt.NDArray[np.int16]:
        """Samples [start_sample, end_sample), which must be appended and not released."""
        if start_sample < self.released_before_sample or end_sample > self._total:
            raise ValueError(
                f"samples [{start_sample}, {end_sample}) are outside the spool "
                f"[{self.released_before_sample}, {self._total})"
            )
        out = np.empty(max(0, end_sample - start_sample), dtype=np.int16)
        position = start_sample
        while position < end_sample:
            index, within = divmod(position, self._segment_samples)
            count = min(end_sample - position, self._segment_samples - within)
            part = np.fromfile(
                self._path(index), dtype=np.int16, count=count, offset=within * _BYTES_PER_SAMPLE
            )
            out[position - start_sample : position - start_sample + count] = part
            position += count
        return out

    def release_before(self, sample: int) -> None:
        """Delete every segment that lies wholly before `sample`."""
        while (self._first_kept + 1) * self._segment_samples <= min(sample, self._total):
            if self._first_kept == self._writer_index:
                self._close_writer()
            self._path(self._first_kept).unlink(missing_ok=True)
            self._first_kept += 1

    def close(self) -> None:
        """Delete every file and the directory; safe to call any number of times."""
        if self._closed:
            return
        self._closed = True
        self._close_writer()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._writer_index = -1
