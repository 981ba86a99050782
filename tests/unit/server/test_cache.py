"""The result cache: round trip, restart, TTL, size cap, and corrupt entries never served."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gigaam_api.server import cache as cache_module
from gigaam_api.server.cache import ResultCache
from gigaam_api.server.jobs import JobResult
from gigaam_api.types import Segment, Word

RESULT = JobResult(
    (
        Segment(
            0,
            0.0,
            2.0,
            "привет мир",
            (Word("привет", 0.1, 0.6, (17, 5, 9)), Word("мир", 0.8, 1.2, (0, 12, 3))),
            -0.25,
        ),
        Segment(1, 4.5, 6.2, "как дела", (), 0.0),
    ),
    duration_s=6.2,
    processing_s=0.4,
)
KEY = "ab" * 32
JOB_ID = "x" * 22


def open_cache(directory: Path, *, ttl_s: float = 3600, max_bytes: int = 1 << 20) -> ResultCache:
    return ResultCache.open(directory, ttl_s=ttl_s, max_bytes=max_bytes)


def entry_file(directory: Path) -> Path:
    (path,) = directory.glob("*.json")
    return path


def test_a_result_round_trips_and_survives_a_restart(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "new" / "dir")  # created on open
    cache.put(KEY, JOB_ID, "v3_ctc", RESULT)
    found = cache.get(KEY)
    assert found is not None
    assert (found.key, found.job_id, found.model, found.result) == (KEY, JOB_ID, "v3_ctc", RESULT)

    reopened = open_cache(tmp_path / "new" / "dir")
    assert len(reopened) == 1
    by_id = reopened.get_by_id(JOB_ID)
    assert by_id is not None and by_id.result == RESULT
    assert reopened.get("cd" * 32) is None
    assert reopened.get_by_id("nope") is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data.replace("привет".encode(), "превед".encode()),
        lambda data: data.replace(b'"format": 1', b'"format": 9'),
        lambda data: b"not json at all\n{}",
        lambda data: data.split(b"\n")[0],  # header only
    ],
    ids=["truncated", "flipped-text", "unknown-format", "garbage", "no-body"],
)
def test_a_corrupt_entry_is_a_miss_and_is_deleted(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    cache = open_cache(tmp_path)
    cache.put(KEY, JOB_ID, "v3_ctc", RESULT)
    path = entry_file(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    reopened = open_cache(tmp_path)
    assert reopened.get(KEY) is None
    assert not path.exists()
    assert not reopened.has(KEY)


def test_an_entry_renamed_to_another_key_is_not_served(tmp_path: Path) -> None:
    cache = open_cache(tmp_path)
    cache.put(KEY, JOB_ID, "v3_ctc", RESULT)
    path = entry_file(tmp_path)
    path.rename(tmp_path / f"{'cd' * 32}.{JOB_ID}.json")
    reopened = open_cache(tmp_path)
    assert reopened.get("cd" * 32) is None


def test_expired_entries_are_deleted(tmp_path: Path) -> None:
    cache = open_cache(tmp_path, ttl_s=60)
    cache.put(KEY, JOB_ID, "v3_ctc", RESULT)
    path = entry_file(tmp_path)
    old = time.time() - 120
    os.utime(path, (old, old))
    assert open_cache(tmp_path, ttl_s=60).get(KEY) is None  # dropped when the index is built
    assert not path.exists()
    cache.put(KEY, JOB_ID, "v3_ctc", RESULT)
    assert open_cache(tmp_path, ttl_s=3600).get(KEY) is not None


def test_the_size_cap_evicts_the_oldest_first(tmp_path: Path) -> None:
    cache = open_cache(tmp_path)
    cache.put(KEY, JOB_ID, "v3_ctc", RESULT)
    one_entry = cache.size_bytes
    small = open_cache(tmp_path, max_bytes=2 * one_entry + one_entry // 2)
    keys = [f"{index:064x}" for index in range(1, 4)]
    for index, key in enumerate(keys):
        small.put(key, f"{index:022d}", "v3_ctc", RESULT)
    # KEY was oldest, then keys[0]: only the two newest fit
    assert [small.has(key) for key in (KEY, *keys)] == [False, False, True, True]
    assert small.size_bytes <= small.max_bytes
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_a_new_result_for_a_key_replaces_the_old_file(tmp_path: Path) -> None:
    cache = open_cache(tmp_path)
    cache.put(KEY, JOB_ID, "v3_ctc", RESULT)
    cache.put(KEY, "y" * 22, "v3_ctc", RESULT)
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert cache.get_by_id(JOB_ID) is None
    assert cache.get_by_id("y" * 22) is not None


def test_leftover_temp_files_are_removed_and_foreign_files_left_alone(tmp_path: Path) -> None:
    crashed = tmp_path / "crashed.tmp"
    crashed.write_bytes(b"half")
    an_hour_ago = time.time() - 3600
    os.utime(crashed, (an_hour_ago, an_hour_ago))
    (tmp_path / "writing.tmp").write_bytes(b"another replica is writing this one now")
    (tmp_path / "notes.txt").write_text("mine")
    open_cache(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt", "writing.tmp"]


def test_replicas_sharing_the_directory_see_each_others_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "REFRESH_S", 0.0)
    first, second = open_cache(tmp_path), open_cache(tmp_path)
    first.put(KEY, JOB_ID, "v3_ctc", RESULT)
    by_id = second.get_by_id(JOB_ID)
    assert by_id is not None and by_id.result == RESULT
    found = second.get(KEY)
    assert found is not None and found.job_id == JOB_ID
    entry_file(tmp_path).unlink()  # swept by the other replica
    assert second.get(KEY) is None
    assert len(second) == 0


def test_an_unwritable_directory_fails_to_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError):
        open_cache(blocker / "cache")
