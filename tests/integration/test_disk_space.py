"""A real server whose TEMP_DIR is a 24 MiB tmpfs: uploads the disk cannot take are refused
cleanly (before reading when their length is declared, part-way when not, and when the disk
really fills up), nothing is left behind, and the next request is served.

Mounting a tmpfs needs root (CI runs as root); elsewhere these tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gigaam_api.server.disk import free_bytes
from tests.fixtures.server import RunningServer, ServerFactory, post_audio

MIB = 1024 * 1024
DISK_MIB = 24
BOUNDARY = "disk"
HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
    "Content-Type: audio/wav\r\n\r\n"
).encode()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root (CI runs these as root)")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(mount_point)],
        check=True,
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def chunked_upload(server: RunningServer, total_bytes: int) -> tuple[httpx.Response, int]:
    """POST a `total_bytes` file with no declared length; returns the answer and bytes sent."""
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield HEAD
        block = b"\0" * (256 * 1024)
        while sent < total_bytes:
            sent += len(block)
            yield block
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
        timeout=60,
    )
    return response, sent


def assert_insufficient_storage(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "insufficient_storage"
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["connection"] == "close"


def assert_disk_back(server: RunningServer, disk: Path) -> None:
    server.assert_clean()
    used = sum(path.stat().st_size for path in disk.rglob("*") if path.is_file())
    assert used == 0
    assert free_bytes(disk) > (DISK_MIB - 1) * MIB


def test_an_upload_that_would_leave_too_little_free_is_refused_before_and_while_reading(
    server_factory: ServerFactory, small_disk: Path, speech_wav_short: Path
) -> None:
    server = server_factory(temp_dir=str(small_disk), min_free_disk_mb=8, max_upload_mb=64)

    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:  # headers only, no body at all
        sock.sendall(
            (
                f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {20 * MIB}\r\n\r\n"
            ).encode()
        )
        answer = b""
        while chunk := sock.recv(65536):  # the server answers and closes without reading
            answer += chunk
        text = answer.decode()
    assert text.startswith("HTTP/1.1 503 ")
    assert "insufficient_storage" in text
    assert "MIN_FREE_DISK_MB" in text

    response, sent = chunked_upload(server, 40 * MIB)  # no length: refused part-way
    assert_insufficient_storage(response)
    assert sent < 40 * MIB
    assert_disk_back(server, small_disk)

    assert post_audio(server, speech_wav_short).status_code == 200  # the next one is served
    assert_disk_back(server, small_disk)


def test_an_upload_that_fills_the_disk_to_the_last_byte_answers_cleanly(
    server_factory: ServerFactory, small_disk: Path, speech_wav_short: Path
) -> None:
    server = server_factory(temp_dir=str(small_disk), min_free_disk_mb=0, max_upload_mb=64)
    response, _ = chunked_upload(server, 40 * MIB)  # no margin: the write itself fails
    assert_insufficient_storage(response)
    assert "ran out of disk space" in response.json()["error"]["message"]
    assert_disk_back(server, small_disk)
    assert post_audio(server, speech_wav_short).status_code == 200  # the next one is served
