"""Disk: the free-space margin (also while an upload is read), and the private work dir that a
killed server leaves behind for the next start to remove."""

from __future__ import annotations

import asyncio
import errno
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.requests import Request
from starlette.types import Message

from gigaam_api.errors import InsufficientStorageError
from gigaam_api.server.disk import PREFIX, DiskRoom, WorkDir, remove_abandoned
from gigaam_api.server.errors import describe
from gigaam_api.server.registry import JobRegistry, JobSpec
from gigaam_api.server.uploads import Upload, UploadLimits, receive_upload
from gigaam_api.server.worker import Worker
from gigaam_api.types import Segment, TranscribeOptions
from tests.unit.server.fakes import ScriptedTranscriber, until

MIB = 1024 * 1024
BOUNDARY = "b0undary"


class FreeSpace:
    """A file system whose free bytes the test sets, shrinking as `written` grows."""

    def __init__(self, free_bytes: int, directory: Path | None = None) -> None:
        self.free_bytes = free_bytes
        self.directory = directory
        self.calls = 0

    def __call__(self, _: Path) -> int:
        self.calls += 1
        written = 0
        if self.directory is not None:
            written = sum(path.stat().st_size for path in self.directory.iterdir())
        return self.free_bytes - written


def test_room_is_refused_when_the_write_would_eat_into_the_margin(tmp_path: Path) -> None:
    room = DiskRoom(tmp_path, 100 * MIB, FreeSpace(300 * MIB))
    room.ensure(200 * MIB)  # leaves exactly the margin
    with pytest.raises(InsufficientStorageError) as caught:
        room.ensure(200 * MIB + 1)
    info = describe(caught.value)
    assert (info.status_code, info.code) == (503, "insufficient_storage")
    assert dict(info.headers)["Retry-After"] == "30"
    assert "MIN_FREE_DISK_MB" in info.message
    assert str(tmp_path) not in info.message  # no server path in an answer


def multipart_request(
    body_parts: list[bytes], *, declared: int | None
) -> tuple[Request, list[int]]:
    """A Request whose body arrives in `body_parts`; the list returned counts the reads."""
    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    if declared is not None:
        headers.append((b"content-length", str(declared).encode()))
    reads: list[int] = []
    pending = list(body_parts)

    async def receive() -> Message:
        reads.append(1)
        chunk = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers, "query_string": b""}
    return Request(scope, receive), reads


def file_body(size_bytes: int) -> list[bytes]:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
    ).encode()
    chunk = b"\0" * MIB
    pieces = [head, *(chunk for _ in range(size_bytes // MIB)), f"\r\n--{BOUNDARY}--\r\n".encode()]
    return pieces


def receive(request: Request, directory: Path, room: DiskRoom) -> Upload:
    limits = UploadLimits(max_bytes=64 * MIB)
    return asyncio.run(receive_upload(request, directory, limits, room))


def test_a_declared_length_the_disk_cannot_take_is_refused_before_reading(
    tmp_path: Path,
) -> None:
    request, reads = multipart_request(file_body(8 * MIB), declared=8 * MIB + 200)
    with pytest.raises(InsufficientStorageError):
        receive(request, tmp_path, DiskRoom(tmp_path, 4 * MIB, FreeSpace(10 * MIB)))
    assert reads == []
    assert list(tmp_path.iterdir()) == []


def test_an_upload_that_fills_the_disk_part_way_stops_and_leaves_nothing(tmp_path: Path) -> None:
    request, reads = multipart_request(file_body(8 * MIB), declared=None)  # chunked: no length
    free = FreeSpace(10 * MIB, tmp_path)
    with pytest.raises(InsufficientStorageError):
        receive(request, tmp_path, DiskRoom(tmp_path, 4 * MIB, free))
    assert 1 < len(reads) < 10  # stopped part-way, not at the end
    assert list(tmp_path.iterdir()) == []


def test_an_upload_within_the_room_is_kept_whole(tmp_path: Path) -> None:
    request, _ = multipart_request(file_body(3 * MIB), declared=None)
    free = FreeSpace(10 * MIB, tmp_path)
    upload = receive(request, tmp_path, DiskRoom(tmp_path, 4 * MIB, free))
    assert upload.path is not None and upload.path.stat().st_size == 3 * MIB
    assert free.calls >= 3  # checked as it was written, not only at the start


@pytest.fixture
def work(tmp_path: Path) -> Iterator[WorkDir]:
    work = WorkDir.create(tmp_path)
    yield work
    work.remove()


def test_a_work_dir_has_uploads_and_spool_and_goes_whole(tmp_path: Path, work: WorkDir) -> None:
    assert work.path.parent == tmp_path and work.path.name.startswith(PREFIX)
    assert work.uploads.is_dir() and work.spool.is_dir()
    (work.spool / "gigaam-spool-x").mkdir()
    work.remove()
    assert list(tmp_path.iterdir()) == []


def test_a_live_servers_work_dir_is_never_taken_for_abandoned(
    tmp_path: Path, work: WorkDir
) -> None:
    neighbour = WorkDir.create(tmp_path)  # a second server starting beside a running one
    try:
        assert work.path.is_dir() and neighbour.path.is_dir()
        assert remove_abandoned(tmp_path) == []
    finally:
        neighbour.remove()


def test_the_work_dir_of_a_killed_server_is_removed_at_the_next_start(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from gigaam_api.server.disk import WorkDir\n"
        "work = WorkDir.create(Path(sys.argv[1]))\n"
        "(work.uploads / 'upload-1.wav').write_bytes(b'x' * 1000)\n"
        "os._exit(0)  # as SIGKILL would: no clean-up at all\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    [left] = tmp_path.glob(PREFIX + "*")
    not_ours = tmp_path / f"{PREFIX}user-data"  # no lock file: not a work dir
    not_ours.mkdir()
    successor = WorkDir.create(tmp_path)
    try:
        assert not left.exists()
        assert not_ours.is_dir()
        assert sorted(tmp_path.iterdir()) == sorted([not_ours, successor.path])
    finally:
        successor.remove()


def test_a_disk_that_fills_while_transcribing_fails_the_job_with_a_503(
    worker: Worker, tmp_path: Path
) -> None:
    full = OSError(errno.ENOSPC, "No space left on device")
    transcriber = ScriptedTranscriber([Segment(0, 0.0, 1.0, "да")], fail_with=full)

    async def scenario() -> None:
        registry = JobRegistry(worker, None, grace_s=0.0, loop=asyncio.get_running_loop())
        path = tmp_path / "upload.wav"
        path.write_bytes(b"audio")
        spec = JobSpec("a" * 64, "scripted", transcriber, TranscribeOptions())
        job = (await registry.acquire(spec, path, worker.admit(), pinned=False)).job
        await until(job, lambda j: j.terminal)
        assert job.status == "failed"
        assert job.error is not None
        info = describe(job.error)
        assert (info.status_code, info.code) == (503, "insufficient_storage")
        assert not path.exists()

    asyncio.run(asyncio.wait_for(scenario(), 30))
