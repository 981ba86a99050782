"""The on-disk sample spool: reads across segment files, release from the front, cleanup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gigaam_api.pipeline.spool import SampleSpool


def ramp(start: int, stop: int) -> np.ndarray:
    return (np.arange(start, stop) % 30000).astype(np.int16)


def test_reads_back_any_range_across_segments(tmp_path: Path) -> None:
    spool = SampleSpool(tmp_path, segment_samples=1000)
    position = 0
    for size in (1, 999, 1500, 7, 2493):
        spool.append(ramp(position, position + size))
        position += size
    assert spool.total_samples == 5000
    assert len(list(spool.directory.iterdir())) == 5
    for start, end in ((0, 5000), (999, 1001), (1234, 4321), (4999, 5000), (2000, 2000)):
        np.testing.assert_array_equal(spool.read(start, end), ramp(start, end))
    spool.close()


def test_release_deletes_whole_segments_only(tmp_path: Path) -> None:
    spool = SampleSpool(tmp_path, segment_samples=1000)
    spool.append(ramp(0, 3500))
    spool.release_before(2999)
    assert spool.released_before_sample == 2000
    assert sorted(p.name for p in spool.directory.iterdir()) == ["00000002.s16", "00000003.s16"]
    np.testing.assert_array_equal(spool.read(2000, 3500), ramp(2000, 3500))
    with pytest.raises(ValueError, match="outside the spool"):
        spool.read(1999, 2100)
    spool.release_before(10_000)  # never past what has been written
    assert spool.released_before_sample == 3000
    spool.append(ramp(3500, 4200))
    np.testing.assert_array_equal(spool.read(3000, 4200), ramp(3000, 4200))
    spool.close()


def test_close_removes_directory_and_is_idempotent(tmp_path: Path) -> None:
    spool = SampleSpool(tmp_path, segment_samples=100)
    spool.append(ramp(0, 450))
    spool.close()
    spool.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        spool.append(ramp(0, 1))
