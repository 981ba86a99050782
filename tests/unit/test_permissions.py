"""The fix offered for an unwritable data directory: one exact command for each cause."""

from __future__ import annotations

import errno
import os
from dataclasses import replace
from pathlib import Path

import pytest

from gigaam_api import permissions
from gigaam_api.permissions import WriteAccess, describe_write_failure, how_to_fix, mount_point_of

BIND_MOUNTED = WriteAccess(
    directory=Path("/data/models"),
    setting="MODELS_DIR",
    blocking=Path("/data"),
    owner=(0, 0),
    user=(1000, 1000),
    read_only=False,
    mount_point=Path("/data"),
)


def test_bind_mount_owned_by_root_gets_the_chown_of_the_compose_folder_and_a_restart() -> None:
    fix = how_to_fix(BIND_MOUNTED)
    assert "/data belongs to 0:0, but the server runs as 1000:1000" in fix
    assert "sudo chown -R 1000:1000 ./data && docker compose restart" in fix


def test_the_older_models_bind_mount_names_its_own_folder() -> None:
    fix = how_to_fix(
        replace(BIND_MOUNTED, blocking=Path("/data/models"), mount_point=Path("/data/models"))
    )
    assert "sudo chown -R 1000:1000 ./models && docker compose restart" in fix


def test_a_directory_outside_the_volume_points_back_to_data() -> None:
    fix = how_to_fix(replace(BIND_MOUNTED, directory=Path("/models"), mount_point=Path("/")))
    assert "not on its /data volume" in fix
    assert "set MODELS_DIR to a directory under /data" in fix


def test_native_run_gets_the_chown_of_the_directory_itself() -> None:
    native = replace(BIND_MOUNTED, blocking=Path("/srv/gigaam"), mount_point=None)
    assert "Run: sudo chown -R 1000:1000 /srv/gigaam" in how_to_fix(native)


def test_read_only_mount_is_named_as_such() -> None:
    fix = how_to_fix(replace(BIND_MOUNTED, read_only=True))
    assert "read-only file system" in fix
    assert "chown" not in fix


@pytest.mark.parametrize("user", [(0, 0), (1000, 1000)])
def test_no_chown_when_ownership_is_not_the_cause(user: tuple[int, int]) -> None:
    fix = how_to_fix(replace(BIND_MOUNTED, owner=user, user=user, mount_point=None))
    assert "chown" not in fix
    assert "set MODELS_DIR to another directory" in fix


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/data/models", "/data"),
        ("/data", "/data"),
        ("/database", "/"),
        ("/data/models/x", "/data/models"),
    ],
)
def test_mount_point_is_the_deepest_one_containing_the_path(path: str, expected: str) -> None:
    points = [Path("/"), Path("/data"), Path("/data/models"), Path("/proc")]
    if expected == "/data":
        points.remove(Path("/data/models"))
    assert mount_point_of(Path(path), points) == Path(expected)


def test_container_facts_come_from_the_marker_file_and_mountinfo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "my volume"
    (volume / "models").mkdir(parents=True)
    marker = tmp_path / ".dockerenv"
    marker.touch()
    mountinfo = tmp_path / "mountinfo"
    escaped = str(volume).replace(" ", "\\040")
    mountinfo.write_text(
        "22 1 0:21 / / rw,relatime - overlay overlay rw\n"
        f"23 22 8:1 /srv/x {escaped} rw,relatime - ext4 /dev/sda1 rw\n"
    )
    monkeypatch.setattr(permissions, "_CONTAINER_MARKERS", (marker,))
    monkeypatch.setattr(permissions, "_MOUNTINFO", mountinfo)
    monkeypatch.setattr(permissions, "_current_user", lambda: (1000, 1000))

    fix = describe_write_failure(
        volume / "models" / "new", "MODELS_DIR", PermissionError(errno.EACCES, "no")
    )

    assert f"{volume / 'models'} belongs to {os.getuid()}:{os.getgid()}" in fix
    assert f"mounted at {volume}" in fix
    assert "sudo chown -R 1000:1000 './my volume' && docker compose restart" in fix


def test_outside_a_container_the_blocking_directory_is_the_nearest_existing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(permissions, "_CONTAINER_MARKERS", (tmp_path / "absent",))
    fix = describe_write_failure(tmp_path / "a" / "b", "MODELS_DIR", OSError(errno.EROFS, "ro"))
    assert fix.startswith(f"{tmp_path} is on a read-only file system")
