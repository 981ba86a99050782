"""Upload deadlines on a fake clock: the idle timeout and the mean-rate floor."""

from __future__ import annotations

import pytest

from gigaam_api.server.errors import UploadTimeoutError, describe
from gigaam_api.server.uploads import RATE_CHECK_AFTER_S, UploadLimits, UploadPace

KIB = 1024


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_the_idle_timeout_is_the_wait_for_each_piece() -> None:
    pace = UploadPace(UploadLimits(max_bytes=1, idle_timeout_s=30.0))
    assert pace.wait_s() == 30.0
    error = pace.stalled()
    assert describe(error).status_code == 408
    assert "UPLOAD_IDLE_TIMEOUT_S" in str(error)
    assert UploadPace(UploadLimits(max_bytes=1)).wait_s() is None  # 0 = no limit


def test_a_slow_but_steady_upload_passes_the_floor() -> None:
    """2 GB over a 1 MB/s VPN: far above an 8 KiB/s floor for its whole half hour."""
    clock = Clock()
    pace = UploadPace(UploadLimits(1 << 40, 30.0, 8 * KIB), clock)
    for _ in range(2048):
        clock.now_s += 1.0
        pace.received(1024 * KIB)


def test_a_trickle_is_refused_once_the_check_starts() -> None:
    clock = Clock()
    pace = UploadPace(UploadLimits(1 << 40, 30.0, 8 * KIB), clock)
    clock.now_s += RATE_CHECK_AFTER_S / 2
    pace.received(1)  # slow, but still in the forgiven start
    clock.now_s += RATE_CHECK_AFTER_S
    with pytest.raises(UploadTimeoutError) as caught:
        pace.received(1)
    assert "UPLOAD_MIN_RATE_KIB_S" in str(caught.value)


def test_a_burst_after_a_slow_start_counts_on_average() -> None:
    clock = Clock()
    pace = UploadPace(UploadLimits(1 << 40, 30.0, 8 * KIB), clock)
    clock.now_s += RATE_CHECK_AFTER_S + 1  # a long stall at the start (connection set-up)...
    pace.received(1024 * KIB)  # ...then the whole file at once: the mean is what counts


def test_no_floor_means_no_rate_check() -> None:
    clock = Clock()
    pace = UploadPace(UploadLimits(1 << 40, 30.0, 0.0), clock)
    clock.now_s += 1000
    pace.received(1)
