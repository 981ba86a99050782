"""Where uploads and decoded audio wait, and whether the disk has room for them.

`WorkDir` is the server's private directory under TEMP_DIR (or the system temp dir): `uploads/`
for request bodies, `spool/` for the pipeline's decoded audio. It is locked (flock) while the
server runs and removed at exit. A server that was killed (SIGKILL, out of memory) cannot clean
up; the next one to start under the same parent removes every work dir whose lock nobody holds.
A directory only gets its final name once locked, so a starting neighbour is never mistaken
for a dead one.

`DiskRoom` refuses writes that would leave less than a margin free (InsufficientStorageError,
503 with Retry-After: the space comes back as jobs end, or another replica has it). No HTTP.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from gigaam_api.errors import InsufficientStorageError

logger = logging.getLogger(__name__)

PREFIX = "gigaam-api-"
_STARTING_PREFIX = ".gigaam-api-starting-"
_LOCK = ".lock"
_MIB = 1024 * 1024
STORAGE_RETRY_AFTER_S = 30
_OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def free_bytes(directory: Path) -> int:
    """Bytes an unprivileged process may still write on the file system holding `directory`."""
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize


def is_out_of_space(exc: BaseException) -> bool:
    """An OSError saying the disk (or the quota) is full."""
    return isinstance(exc, OSError) and exc.errno in _OUT_OF_SPACE


def out_of_space_error() -> InsufficientStorageError:
    return InsufficientStorageError(
        "The server ran out of disk space while storing this request's audio; nothing was kept. "
        "Retry later or on another server.",
        retry_after_s=STORAGE_RETRY_AFTER_S,
    )


class DiskRoom:
    """Keeps `margin_bytes` free in `directory`.

    Args:
        directory: where the files are written.
        margin_bytes: free space no write may eat into (MIN_FREE_DISK_MB).
        free: measures free bytes (injectable for unit tests).
    """

    def __init__(
        self,
        directory: Path,
        margin_bytes: int,
        free: Callable[[Path], int] = free_bytes,
    ) -> None:
        self.directory = directory
        self.margin_bytes = margin_bytes
        self._free = free

    def free_bytes(self) -> int:
        return self._free(self.directory)

    def ensure(self, more_bytes: int = 0) -> None:
        """Check that writing `more_bytes` more still leaves the margin free.

        Raises:
            InsufficientStorageError: it would not (503 with Retry-After).
        """
        free = self._free(self.directory)
        if free - more_bytes >= self.margin_bytes:
            return
        needed = f"{more_bytes / _MIB:.0f} MiB more, " if more_bytes else ""
        raise InsufficientStorageError(
            f"Not enough free disk space on the server for this upload ({needed}"
            f"{max(free, 0) / _MIB:.0f} MiB free, {self.margin_bytes / _MIB:.0f} MiB kept free "
            "by MIN_FREE_DISK_MB). Retry later or on another server.",
            retry_after_s=STORAGE_RETRY_AFTER_S,
        )


class WorkDir:
    """The running server's private temp directory; use `create`, then `remove` at exit."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd = lock_fd

    @property
    def uploads(self) -> Path:
        return self.path / "uploads"

    @property
    def spool(self) -> Path:
        return self.path / "spool"

    @classmethod
    def create(cls, parent: Path | None = None) -> WorkDir:
        """Remove abandoned work dirs under `parent`, then make and lock a new one.

        Raises:
            OSError: the parent cannot be created or written.
        """
        parent = parent if parent is not None else Path(tempfile.gettempdir())
        parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(parent)
        starting = Path(tempfile.mkdtemp(prefix=_STARTING_PREFIX, dir=parent))
        lock_fd = os.open(starting / _LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = parent / (PREFIX + starting.name.removeprefix(_STARTING_PREFIX))
        starting.rename(path)  # the lock goes with the inode
        work = cls(path, lock_fd)
        work.uploads.mkdir()
        work.spool.mkdir()
        return work

    def remove(self) -> None:
        """Delete everything in it, then the lock (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def remove_abandoned(parent: Path) -> list[Path]:
    """Delete the work dirs under `parent` whose server is gone (their lock is free)."""
    removed: list[Path] = []
    for path in parent.glob(PREFIX + "*"):
        try:
            lock_fd = os.open(path / _LOCK, os.O_RDWR)
        except OSError:
            continue  # not a work dir of ours (or already gone)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live server holds it
        finally:
            os.close(lock_fd)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    if removed:
        logger.warning(
            "Removed %d temp dir(s) left by a server that did not stop cleanly: %s",
            len(removed),
            ", ".join(path.name for path in removed),
        )
    return removed
