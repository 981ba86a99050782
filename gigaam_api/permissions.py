"""Why a data directory (MODELS_DIR, the job cache) cannot be written, and the fix as a command.

The usual cause is ownership: a host folder bind-mounted into the container belongs to the host's
user, while the server runs as UID 1000. Knows nothing of what the directories hold.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

_CONTAINER_MARKERS = (Path("/.dockerenv"), Path("/run/.containerenv"))
_MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class WriteAccess:
    """The facts about one failed write that decide which fix applies."""

    directory: Path
    """The directory the server could not create or write into."""
    setting: str
    """The setting that names it (MODELS_DIR, ...)."""
    blocking: Path
    """The nearest existing directory on that path: the one whose owner or mode is in the way."""
    owner: tuple[int, int]
    """UID and GID of `blocking`."""
    user: tuple[int, int]
    """UID and GID the server runs as."""
    read_only: bool
    """The file system is mounted read-only."""
    mount_point: Path | None
    """Inside a container: where the volume holding the directory is mounted; None natively."""


def how_to_fix(access: WriteAccess) -> str:
    """The cause in a few words and the exact command that removes it."""
    user = f"{access.user[0]}:{access.user[1]}"
    owner = f"{access.owner[0]}:{access.owner[1]}"
    if access.read_only:
        return (
            f"{access.blocking} is on a read-only file system. Mount it read-write (no `:ro`) "
            f"or set {access.setting} to a writable directory, then restart."
        )
    if access.owner == access.user or access.user[0] == 0:
        return (
            f"{access.blocking} is not writable for the server ({user}) although ownership is "
            "not the cause: its mode, a security module or the file system forbids writing; "
            f"set {access.setting} to another directory and restart."
        )
    if access.mount_point is None:
        target = shlex.quote(str(access.blocking))
        return (
            f"{access.blocking} belongs to {owner}, but the server runs as {user}. Run: "
            f"sudo chown -R {user} {target}  (or set {access.setting} to a directory you own), "
            "then restart."
        )
    if access.mount_point == Path("/"):
        return (
            f"{access.directory} is inside the container, not on its /data volume; set "
            f"{access.setting} to a directory under /data and restart."
        )
    # Compose's documented bind mount is ./data:/data (an older one, ./models:/data/models):
    # the host folder is named after the mount point.
    host_folder = shlex.quote(f"./{access.mount_point.name}")
    return (
        f"{access.blocking} belongs to {owner}, but the server runs as {user}. It is a host "
        f"folder mounted at {access.mount_point}; on the host, next to docker-compose.yml, "
        f"run: sudo chown -R {user} {host_folder} && docker compose restart "
        f"(or chown the folder you mounted at {access.mount_point})."
    )


def describe_write_failure(directory: Path, setting: str, exc: OSError) -> str:
    """how_to_fix() for a failure this process just had, with the facts read from the system."""
    return how_to_fix(_inspect(directory, setting, exc))


def _inspect(directory: Path, setting: str, exc: OSError) -> WriteAccess:
    blocking = directory.absolute()
    while not blocking.is_dir() and blocking != blocking.parent:
        blocking = blocking.parent
    stat = blocking.stat()
    in_container = any(marker.exists() for marker in _CONTAINER_MARKERS)
    return WriteAccess(
        directory=directory,
        setting=setting,
        blocking=blocking,
        owner=(stat.st_uid, stat.st_gid),
        user=_current_user(),
        read_only=exc.errno == errno.EROFS,
        mount_point=mount_point_of(blocking, _read_mount_points()) if in_container else None,
    )


def _current_user() -> tuple[int, int]:
    return os.getuid(), os.getgid()


def mount_point_of(path: Path, mount_points: list[Path]) -> Path:
    """The deepest mount point that contains `path` ("/" when none is deeper)."""
    containing = [point for point in mount_points if path == point or point in path.parents]
    return max(containing, key=lambda point: len(point.parts), default=Path("/"))


def _read_mount_points() -> list[Path]:
    try:
        lines = _MOUNTINFO.read_text().splitlines()
    except OSError:
        return []
    # Field 5 is the mount point, with spaces and the like written as octal escapes (\040).
    return [
        Path(_OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), fields[4]))
        for fields in (line.split() for line in lines)
        if len(fields) > 4
    ]
