"""Scale-out on a real load balancer: Debian's nginx on 127.0.0.1 with deploy/nginx.conf (the
file docker-compose.scale.yml mounts) in front of two server processes.

- A burst larger than one replica's queue is served without a 503 reaching the client: the full
  replica's 503 sends the request on to the other one (`proxy_next_upstream http_503`).
- A replica killed (SIGKILL) mid-burst loses no request: nginx resends what it had sent there.
- A replica stopped (SIGTERM) mid-burst hands its queued requests back as 503s, which nginx
  sends to the other one, and finishes its running job.
- The jobs API works through the proxy: a replica that does not know a job id answers 404 and
  nginx asks the next one.

Runs are held at a file gate (tests/fixtures/gated_serve.py), so the queues are full when the
test says so, never by timing. Needs nginx (`make test-scale` installs it as root); not in CI.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fixtures.processes import (
    REPO,
    WAIT_S,
    ServerProcess,
    free_port,
    start_server_process,
)
from tests.fixtures.server import until

pytestmark = pytest.mark.scale

TRANSCRIPTIONS = "/v1/audio/transcriptions"
NGINX_CONF = REPO / "deploy" / "nginx.conf"


def render_config(listen_port: int, replica_ports: list[int], work: Path) -> str:
    """deploy/nginx.conf with loopback addresses and the test's own temp and log paths."""
    text = NGINX_CONF.read_text()
    servers = "".join(f"        server 127.0.0.1:{port} max_fails=0;\n" for port in replica_ports)
    text, upstreams = re.subn(r"( {8}server \S+ max_fails=0;\n)+", servers, text)
    text, listens = re.subn(r"listen 8000;", f"listen 127.0.0.1:{listen_port};", text)
    assert (upstreams, listens) == (1, 1), "deploy/nginx.conf changed shape"
    paths = "".join(
        f"    {directive} {work / name};\n"
        for directive, name in (
            ("client_body_temp_path", "body"),
            ("proxy_temp_path", "proxy"),
            ("fastcgi_temp_path", "fastcgi"),
            ("uwsgi_temp_path", "uwsgi"),
            ("scgi_temp_path", "scgi"),
            ("access_log", "access.log"),
        )
    )
    return text.replace("http {\n", "http {\n" + paths, 1)


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_nginx(replicas: list[ServerProcess], work: Path) -> Nginx:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(binary).exists(), "nginx is missing: `make test-scale` installs it as root"
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(render_config(port, [replica.port for replica in replicas], work))
    process = subprocess.Popen(
        [
            binary,
            *("-p", str(work), "-c", str(conf), "-e", str(work / "error.log")),
            *("-g", f"daemon off; master_process off; pid {work / 'nginx.pid'};"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nginx = Nginx(process, port)

    def answers() -> bool:
        assert process.poll() is None, (work / "error.log").read_text()
        try:
            return httpx.get(f"{nginx.base_url}/ready", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    until(answers, "nginx to answer", WAIT_S)
    return nginx


@pytest.fixture
def stack() -> Iterator[list[ServerProcess | Nginx]]:
    started: list[ServerProcess | Nginx] = []
    yield started
    for item in reversed(started):
        if isinstance(item, Nginx):
            item.process.terminate()
            item.process.wait(WAIT_S)
        else:
            item.stop()


def replicas(
    checkpoint: Path,
    tmp_path: Path,
    stack: list[ServerProcess | Nginx],
    queues: tuple[int, ...],
    grace_s: float = 5.0,
) -> list[ServerProcess]:
    """Gated replicas (one gate for all), one per MAX_QUEUE in `queues`, ready."""
    started = [
        start_server_process(
            checkpoint,
            tmp_path / f"replica{index}",
            gate=tmp_path / "gate",
            MAX_QUEUE=str(queue),
            SHUTDOWN_GRACE_S=str(grace_s),
        )
        for index, queue in enumerate(queues)
    ]
    stack.extend(started)
    for replica in started:
        replica.wait_ready()
    return started


class Burst:
    """`count` transcription requests through the proxy at once, each in its own thread, each
    with different bytes (two zero samples more each), so no two share a job."""

    def __init__(self, url: str, audio: Path, count: int) -> None:
        self.statuses: list[int] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        data = audio.read_bytes()
        self._threads = [
            threading.Thread(target=self._post, args=(url, data + b"\0\0" * index))
            for index in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _post(self, url: str, data: bytes) -> None:
        try:
            response = httpx.post(
                f"{url}{TRANSCRIPTIONS}",
                files={"file": ("burst.wav", data, "audio/wav")},
                timeout=WAIT_S,
            )
        except httpx.HTTPError as exc:
            with self._lock:
                self.errors.append(exc)
            return
        with self._lock:
            self.statuses.append(response.status_code)

    def finish(self) -> list[int]:
        for thread in self._threads:
            thread.join(WAIT_S)
        assert not self.errors, self.errors
        return sorted(self.statuses)


def active(replica: ServerProcess) -> int:
    value: int = httpx.get(f"{replica.base_url}/health", timeout=5).json()["queue"]["active"]
    return value


def answered(replica: ServerProcess, route: str, status: int) -> float:
    """How many requests to `route` this replica answered with `status` (its /metrics)."""
    text = httpx.get(f"{replica.base_url}/metrics", timeout=5).text
    pattern = (
        r"gigaam_http_requests_total\{[^}]*route=\"" + re.escape(route) + r"\"[^}]*"
        r"status=\"" + str(status) + r"\"[^}]*\} (\S+)"
    )
    return sum(float(value) for value in re.findall(pattern, text))


def test_a_burst_larger_than_one_replicas_queue_reaches_no_client_as_503(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    speech_wav_short: Path,
    stack: list[ServerProcess | Nginx],
) -> None:
    small, large = replicas(tiny_v3_ctc_checkpoint, tmp_path, stack, (1, 3))
    nginx = start_nginx([small, large], tmp_path / "nginx")
    stack.append(nginx)
    burst = Burst(nginx.base_url, speech_wav_short, 4)  # more than the small one's queue of 1
    until(lambda: (active(small), active(large)) == (1, 3), "both queues full")
    # the small replica said 503 and nginx went on to the other
    assert answered(small, TRANSCRIPTIONS, 503) >= 1
    small.open_gate()
    assert burst.finish() == [200, 200, 200, 200]

    # The jobs API through the proxy: whichever replica is asked, the owner answers.
    submitted = httpx.post(
        f"{nginx.base_url}{TRANSCRIPTIONS}/jobs",
        files={"file": ("a.wav", speech_wav_short.read_bytes() + b"\1\0", "audio/wav")},
        timeout=WAIT_S,
    )
    assert submitted.status_code == 202
    job_url = f"{nginx.base_url}{TRANSCRIPTIONS}/jobs/{submitted.json()['id']}"
    statuses = {httpx.get(job_url, timeout=WAIT_S).status_code for _ in range(6)}
    assert statuses == {200}
    by_id = TRANSCRIPTIONS + "/jobs/{job_id}"
    assert answered(small, by_id, 404) + answered(large, by_id, 404) >= 1  # asked the other one
    until(lambda: httpx.get(job_url, timeout=WAIT_S).json()["status"] == "done", "the job")
    assert httpx.get(f"{job_url}/result?response_format=srt", timeout=WAIT_S).status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_a_replica_killed_or_stopped_mid_burst_loses_no_request(
    sig: signal.Signals,
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    speech_wav_short: Path,
    stack: list[ServerProcess | Nginx],
) -> None:
    doomed, survivor = replicas(tiny_v3_ctc_checkpoint, tmp_path, stack, (8, 8), grace_s=600)
    nginx = start_nginx([doomed, survivor], tmp_path / "nginx")
    stack.append(nginx)
    burst = Burst(nginx.base_url, speech_wav_short, 6)
    until(lambda: active(doomed) + active(survivor) == 6, "all six admitted")
    assert active(doomed) >= 2  # one running and at least one queued, not yet started
    doomed.wait_held()
    doomed.send(sig)
    if sig == signal.SIGTERM:
        doomed.wait_for_line(r"Stopping: new work refused, \d+ queued job\(s\) cancelled")
    until(lambda: active(survivor) >= 5, "the doomed replica's queue moved to the survivor")
    survivor.open_gate()  # one gate for both: the stopped replica's running job finishes too
    assert burst.finish() == [200] * 6
    assert doomed.wait_exit() == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
