"""Interrupted-job records: kept across a reopen, bounded, and never trusted when unreadable."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gigaam_api.server import interrupted
from gigaam_api.server.interrupted import InterruptedJob, InterruptedJobs

JOB = InterruptedJob("A" * 22, "k" * 64, "v3_ctc", 1767225600.0, 1767225700.5, 12.5, 3600.0)


def test_a_record_survives_a_reopen(tmp_path: Path) -> None:
    InterruptedJobs.open(tmp_path, ttl_s=3600).record(JOB)
    reopened = InterruptedJobs.open(tmp_path, ttl_s=3600)
    assert reopened.get(JOB.job_id) == JOB
    assert reopened.get("B" * 22) is None


def test_an_id_outside_the_pattern_is_never_a_file_name(tmp_path: Path) -> None:
    records = InterruptedJobs.open(tmp_path, ttl_s=3600)
    records.record(InterruptedJob("../../etc/passwd", "k", "m", 0.0, 0.0, 0.0, None))
    assert list((tmp_path / interrupted.SUBDIR).iterdir()) == []


def test_an_unreadable_record_is_deleted_not_served(tmp_path: Path) -> None:
    records = InterruptedJobs.open(tmp_path, ttl_s=3600)
    records.record(JOB)
    path = tmp_path / interrupted.SUBDIR / f"{JOB.job_id}.json"
    path.write_text('{"job_id": "A')
    assert records.get(JOB.job_id) is None
    assert not path.exists()


def test_old_records_expire(tmp_path: Path) -> None:
    InterruptedJobs.open(tmp_path, ttl_s=3600).record(JOB)
    path = tmp_path / interrupted.SUBDIR / f"{JOB.job_id}.json"
    an_hour_ago = time.time() - 3601
    os.utime(path, (an_hour_ago, an_hour_ago))
    assert InterruptedJobs.open(tmp_path, ttl_s=3600).get(JOB.job_id) is None
    assert not path.exists()


def test_the_oldest_records_go_past_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interrupted, "MAX_RECORDS", 3)
    records = InterruptedJobs.open(tmp_path, ttl_s=3600)
    ids = [f"{letter * 22}" for letter in "ABCDE"]
    for job_id in ids:
        records.record(InterruptedJob(job_id, "k", "m", 0.0, 0.0, 0.0, None))
    assert len(records) == 3
    assert [records.get(job_id) is not None for job_id in ids] == [False, False, True, True, True]


def test_a_replica_sharing_the_directory_finds_another_ones_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(interrupted, "REFRESH_S", 0.0)
    reader = InterruptedJobs.open(tmp_path, ttl_s=3600)
    InterruptedJobs.open(tmp_path, ttl_s=3600).record(JOB)  # the other replica stopping
    assert reader.get(JOB.job_id) == JOB
