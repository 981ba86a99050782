"""The test servers in their own processes start on a port they really hold: one whose port
another process took between the probe and the bind is started again on another port."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.fixtures import processes
from tests.fixtures.processes import ServerProcess, start_server_process


def test_a_port_taken_before_the_server_binds_it_is_replaced(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = processes.free_port
        monkeypatch.setattr(processes, "free_port", lambda: next(ports, None) or real_free_port())
        server = start_server_process(tiny_v3_ctc_checkpoint, tmp_path)
        servers.append(server)
        assert server.port != taken
        assert processes.listens(server.pid, server.port)
        server.wait_ready()
        assert httpx.get(f"{server.base_url}/health").json()["status"] == "ok"
