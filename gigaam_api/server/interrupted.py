"""Jobs a stopping server cancelled before they finished, remembered across the restart.

A job's id was given out (X-Job-Id, the jobs API), so its client may ask for it after the
server comes back. Without a record the answer would be 404, as if the id had never existed;
with one it is the job, `cancelled`, saying the server stopped before it was done. One small
JSON file per job in `<CACHE_DIR>/interrupted/`, named by the job id (ids are checked against
their pattern, and found through an index built from the file names, re-read on a miss like the
result cache's, so replicas sharing CACHE_DIR answer for each other: no text from a request
becomes a path). Bounded by the cache's TTL and MAX_RECORDS, oldest first. No HTTP.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gigaam_api.server.cache import REFRESH_S, remove_stale_temp_files

logger = logging.getLogger(__name__)

SUBDIR = "interrupted"
MAX_RECORDS = 1000
_NAME = re.compile(r"^([A-Za-z0-9_-]{22})\.json$")
_TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True)
class InterruptedJob:
    """What is kept of a job the server stopped."""

    job_id: str
    key: str
    model: str
    created_at: float
    stopped_at: float
    processed_s: float
    duration_s: float | None


def _parse(data: bytes) -> InterruptedJob:
    raw = json.loads(data)
    duration = raw["duration_s"]
    return InterruptedJob(
        job_id=str(raw["job_id"]),
        key=str(raw["key"]),
        model=str(raw["model"]),
        created_at=float(raw["created_at"]),
        stopped_at=float(raw["stopped_at"]),
        processed_s=float(raw["processed_s"]),
        duration_s=None if duration is None else float(duration),
    )


class InterruptedJobs:
    """The records in `directory` (see `open`), each kept `ttl_s` at most. Thread-safe."""

    def __init__(self, directory: Path, *, ttl_s: float) -> None:
        self.directory = directory
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._index: dict[str, tuple[Path, float]] = {}
        self._refreshed_s = time.monotonic()
        self._scan()

    def _scan(self) -> None:
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match is None:
                continue
            try:
                written_at = path.stat().st_mtime
            except OSError:
                continue
            with self._lock:
                self._index.setdefault(match[1], (path, written_at))
        self._sweep()

    @classmethod
    def open(cls, cache_dir: Path, *, ttl_s: float) -> InterruptedJobs:
        """The store under an existing cache directory.

        Raises:
            OSError: the subdirectory cannot be created.
        """
        directory = cache_dir / SUBDIR
        directory.mkdir(exist_ok=True)
        remove_stale_temp_files(directory)
        return cls(directory, ttl_s=ttl_s)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def record(self, job: InterruptedJob) -> None:
        """Keep `job` (failures are logged: the server is stopping, nothing is left to tell)."""
        if not _NAME.match(f"{job.job_id}.json"):
            return
        path = self.directory / f"{job.job_id}.json"
        try:
            handle, temp = tempfile.mkstemp(dir=self.directory, suffix=_TEMP_SUFFIX)
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump(asdict(job), file)
            os.replace(temp, path)
        except OSError as exc:
            logger.warning("could not record interrupted job %s: %s", job.job_id, exc)
            return
        with self._lock:
            self._index[job.job_id] = (path, time.time())
        self._sweep()

    def get(self, job_id: str) -> InterruptedJob | None:
        """The record of this job; None when there is none (or it expired or is unreadable)."""
        with self._lock:
            found = self._index.get(job_id)
            refresh = found is None and time.monotonic() - self._refreshed_s >= REFRESH_S
            if refresh:
                self._refreshed_s = time.monotonic()
        if refresh:  # another replica sharing CACHE_DIR may have stopped with it
            self._scan()
            with self._lock:
                found = self._index.get(job_id)
        if found is None:
            return None
        path, written_at = found
        if time.time() - written_at > self.ttl_s:
            self._forget(job_id, path)
            return None
        try:
            return _parse(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring an unreadable interrupted-job record %s: %s", path.name, exc)
            self._forget(job_id, path)
            return None

    def _forget(self, job_id: str, path: Path) -> None:
        with self._lock:
            self._index.pop(job_id, None)
        path.unlink(missing_ok=True)

    def _sweep(self) -> None:
        now = time.time()
        with self._lock:
            by_age = sorted(self._index.items(), key=lambda item: item[1][1])
            excess = len(by_age) - MAX_RECORDS
            doomed = [
                (job_id, path)
                for rank, (job_id, (path, written_at)) in enumerate(by_age)
                if rank < excess or now - written_at > self.ttl_s
            ]
        for job_id, path in doomed:
            self._forget(job_id, path)
