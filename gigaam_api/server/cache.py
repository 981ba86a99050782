"""Finished transcripts on disk, by job key: bounded by age and size, kept across restarts.

One file per result, `<key>.<job id>.json`: a header line (ids, model, time, the body's SHA-256)
and a body line (duration and segments). Files are written whole and renamed into place; a
file whose checksum or shape is wrong is deleted and reported as a miss, never served. The
index (key -> file) lives in memory, built from the file names at start and brought up to date
from them on a miss (at most every REFRESH_S), so replicas sharing CACHE_DIR see each other's
results; no name that comes from a request is ever joined to a path. Thread-safe; no HTTP.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gigaam_api.server.jobs import JobResult
from gigaam_api.types import Segment, Word

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
REFRESH_S = 2.0
"""On a miss, the index is re-read from the directory at most this often (another replica
sharing CACHE_DIR may have written the result)."""
_NAME = re.compile(r"^([0-9a-f]{64})\.([A-Za-z0-9_-]{1,64})\.json$")
_TEMP_SUFFIX = ".tmp"
_STALE_TEMP_S = 600.0
"""A temp file this old is a write a crash cut short (a live one lasts milliseconds, and may
belong to another replica sharing the directory)."""


@dataclass(frozen=True)
class CachedResult:
    """A result as the cache holds it, with the job it came from."""

    key: str
    job_id: str
    model: str
    created_at: float
    result: JobResult


@dataclass(frozen=True)
class _Entry:
    key: str
    job_id: str
    path: Path
    size_bytes: int
    written_at: float


def remove_stale_temp_files(directory: Path) -> None:
    """Delete the temp files of writes a crash cut short (older than _STALE_TEMP_S)."""
    for temp in directory.glob("*" + _TEMP_SUFFIX):
        with contextlib.suppress(OSError):
            if time.time() - temp.stat().st_mtime > _STALE_TEMP_S:
                temp.unlink()


class CorruptEntryError(ValueError):
    """A cache file that does not hold what its name and checksum promise."""


def _encode(result: JobResult) -> bytes:
    body = {
        "duration_s": result.duration_s,
        "processing_s": result.processing_s,
        "segments": [
            [
                s.id,
                s.start,
                s.end,
                s.text,
                s.avg_logprob,
                [[w.text, w.start, w.end, list(w.tokens)] for w in s.words],
            ]
            for s in result.segments
        ],
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CorruptEntryError(f"expected a number, got {value!r}")
    return float(value)


def _token_ids(values: Any) -> tuple[int, ...]:
    if not isinstance(values, list) or not all(
        isinstance(value, int) and not isinstance(value, bool) for value in values
    ):
        raise CorruptEntryError(f"expected token ids, got {values!r}")
    return tuple(values)


def _decode(body: bytes) -> JobResult:
    try:
        data = json.loads(body)
        segments = tuple(
            Segment(
                int(segment_id),
                _number(start),
                _number(end),
                str(text),
                tuple(
                    Word(str(w), _number(ws), _number(we), _token_ids(tokens))
                    for w, ws, we, tokens in words
                ),
                _number(logprob),
            )
            for segment_id, start, end, text, logprob, words in data["segments"]
        )
        return JobResult(segments, _number(data["duration_s"]), _number(data["processing_s"]))
    except CorruptEntryError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptEntryError(f"unreadable body: {exc}") from exc


class ResultCache:
    """Results by key in `directory`, at most `max_bytes` in all, each kept `ttl_s` at most.

    Args:
        directory: an existing, writable directory (see `open`).
        ttl_s: an entry older than this is deleted instead of served.
        max_bytes: when a new entry takes the total past this, the oldest go first.
    """

    def __init__(self, directory: Path, *, ttl_s: float, max_bytes: int) -> None:
        self.directory = directory
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._by_key: dict[str, _Entry] = {}
        self._by_id: dict[str, str] = {}
        self._refreshed_s = time.monotonic()
        self._scan()

    @classmethod
    def open(cls, directory: Path, *, ttl_s: float, max_bytes: int) -> ResultCache:
        """Create the directory if needed, check it is writable, and index what it holds.

        Raises:
            OSError: the directory cannot be created or written.
        """
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, suffix=_TEMP_SUFFIX):
            pass
        remove_stale_temp_files(directory)
        cache = cls(directory, ttl_s=ttl_s, max_bytes=max_bytes)
        logger.info(
            "result cache %s: %d entries, %d bytes", directory, len(cache), cache.size_bytes
        )
        return cache

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return sum(entry.size_bytes for entry in self._by_key.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_key)

    def has(self, key: str) -> bool:
        with self._lock:
            return key in self._by_key

    def get(self, key: str) -> CachedResult | None:
        """The result stored for `key`; None when absent, expired or corrupt."""
        entry = self._entry(key=key)
        return None if entry is None else self._load(entry)

    def get_by_id(self, job_id: str) -> CachedResult | None:
        """The result of the job with this id; None when absent, expired or corrupt."""
        entry = self._entry(job_id=job_id)
        return None if entry is None else self._load(entry)

    def _entry(self, *, key: str | None = None, job_id: str | None = None) -> _Entry | None:
        """The indexed entry for a key or an id; on a miss, once more after a refresh."""
        for attempt in range(2):
            with self._lock:
                found_key = key if job_id is None else self._by_id.get(job_id)
                entry = None if found_key is None else self._by_key.get(found_key)
            if entry is not None or attempt or not self._refresh():
                return entry
        return None

    def _refresh(self) -> bool:
        """Re-read the file names (not more than every REFRESH_S); False when skipped."""
        now = time.monotonic()
        with self._lock:
            if now - self._refreshed_s < REFRESH_S:
                return False
            self._refreshed_s = now
        self._scan()
        return True

    def put(self, key: str, job_id: str, model: str, result: JobResult) -> None:
        """Store a result (replacing any for the same key); failures are logged, not raised."""
        body = _encode(result)
        header = {
            "format": FORMAT_VERSION,
            "key": key,
            "id": job_id,
            "model": model,
            "created_at": time.time(),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        data = json.dumps(header, ensure_ascii=False).encode() + b"\n" + body
        path = self.directory / f"{key}.{job_id}.json"
        try:
            handle, temp = tempfile.mkstemp(dir=self.directory, suffix=_TEMP_SUFFIX)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                os.replace(temp, path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            logger.warning("could not write to the result cache %s: %s", self.directory, exc)
            return
        with self._lock:
            old = self._by_key.get(key)
            self._add(_Entry(key, job_id, path, len(data), time.time()))
        if old is not None and old.path != path:
            old.path.unlink(missing_ok=True)
        self.sweep()

    def sweep(self) -> None:
        """Delete expired entries, then the oldest until the total fits max_bytes."""
        now = time.time()
        doomed: list[_Entry] = []
        with self._lock:
            entries = sorted(self._by_key.values(), key=lambda entry: entry.written_at)
            total = sum(entry.size_bytes for entry in entries)
            for entry in entries:
                if now - entry.written_at > self.ttl_s or total > self.max_bytes:
                    doomed.append(entry)
                    total -= entry.size_bytes
                    self._forget(entry)
        for entry in doomed:
            entry.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------------ internals

    def _add(self, entry: _Entry) -> None:
        previous = self._by_key.get(entry.key)
        if previous is not None:
            self._by_id.pop(previous.job_id, None)
        self._by_key[entry.key] = entry
        self._by_id[entry.job_id] = entry.key

    def _forget(self, entry: _Entry) -> None:
        if self._by_key.get(entry.key) is entry:
            del self._by_key[entry.key]
            self._by_id.pop(entry.job_id, None)

    def _scan(self) -> None:
        """Index the files in the directory (dropping entries whose file has gone)."""
        found: list[_Entry] = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            try:
                if match is not None and path.is_file():
                    stat = path.stat()
                    found.append(_Entry(match[1], match[2], path, stat.st_size, stat.st_mtime))
            except OSError:
                continue  # removed by another replica while we looked
        with self._lock:
            for entry in list(self._by_key.values()):
                if not entry.path.exists():
                    self._forget(entry)
            for entry in found:
                known = self._by_key.get(entry.key)
                if known is None or known.written_at < entry.written_at:
                    self._add(entry)
        self.sweep()

    def _load(self, entry: _Entry) -> CachedResult | None:
        if time.time() - entry.written_at > self.ttl_s:
            self._discard(entry, "expired")
            return None
        try:
            data = entry.path.read_bytes()
        except OSError:
            with self._lock:
                self._forget(entry)  # deleted behind our back
            return None
        try:
            return self._verify(entry, data)
        except CorruptEntryError as exc:
            logger.warning("ignoring a corrupt result cache entry %s: %s", entry.path.name, exc)
            self._discard(entry, "corrupt")
            return None

    @staticmethod
    def _verify(entry: _Entry, data: bytes) -> CachedResult:
        header_line, newline, body = data.partition(b"\n")
        if not newline:
            raise CorruptEntryError("no body")
        try:
            header = json.loads(header_line)
        except ValueError as exc:
            raise CorruptEntryError(f"unreadable header: {exc}") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT_VERSION:
            raise CorruptEntryError("unknown format")
        if (header.get("key"), header.get("id")) != (entry.key, entry.job_id):
            raise CorruptEntryError("the header does not match the file name")
        if header.get("body_sha256") != hashlib.sha256(body).hexdigest():
            raise CorruptEntryError("checksum mismatch")
        return CachedResult(
            entry.key,
            entry.job_id,
            str(header.get("model", "")),
            _number(header.get("created_at")),
            _decode(body),
        )

    def _discard(self, entry: _Entry, why: str) -> None:
        with self._lock:
            self._forget(entry)
        entry.path.unlink(missing_ok=True)
        logger.debug("result cache entry %s removed (%s)", entry.path.name, why)
