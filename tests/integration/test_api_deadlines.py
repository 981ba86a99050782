"""Upload deadlines on a real server: half-sent uploads can no longer lock everyone out."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.fixtures.server import (
    WAIT_S,
    ServerFactory,
    post_audio,
    request_bytes,
    send_raw,
    until,
)

_IDLE_S = 3.0


def _read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(WAIT_S)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_half_sent_uploads_time_out_and_free_the_queue(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    server = server_factory(max_queue=2, upload_idle_timeout_s=_IDLE_S)
    payload = request_bytes(server, speech_wav_short, {"model": "whisper-1"})
    # two clients send their headers and half the body, then go quiet
    went_quiet_s = time.monotonic()
    idle = [send_raw(server, payload[: len(payload) // 2]) for _ in range(2)]
    until(lambda: server.runtime.worker.active == 2, "the idle uploads to be admitted")
    locked_out = post_audio(server, speech_wav_short)
    if time.monotonic() - went_quiet_s < _IDLE_S:  # (always, unless this machine stalled)
        assert locked_out.status_code == 503  # both slots are held by the idle uploads

    for sock in idle:
        response = _read_response(sock)  # the server answers and closes on its own
        sock.close()
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert b"connection: close" in head.lower()
        error = httpx.Response(408, content=body).json()["error"]
        assert error["code"] == "upload_timeout"
        assert error["type"] == "invalid_request_error"
        assert "UPLOAD_IDLE_TIMEOUT_S" in error["message"]

    served = post_audio(server, speech_wav_short)
    assert served.status_code == 200, served.text
    assert served.json()["text"]
    server.assert_clean()
