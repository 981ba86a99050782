"""Stopping a server process the way Docker does (SIGTERM), and killing one (SIGKILL).

Each server runs in its own process (tests/fixtures/processes.py) with jobs held at a file gate
after their first segment, so what is running, queued or streaming at the signal is known
without sleeping. What must hold: new work gets 503 + Retry-After, queued jobs are cancelled at
once, the running job may finish, a stream ends with an event (never a cut connection), the
process exits 0, no temp file and no ffmpeg is left, and an interrupted job's id still answers
after a restart.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.fixtures.processes import WAIT_S, ServerProcess, start_server_process
from tests.fixtures.server import until

TRANSCRIPTIONS = "/v1/audio/transcriptions"
JOBS = "/v1/audio/transcriptions/jobs"


def upload(audio: Path) -> dict[str, tuple[str, bytes, str]]:
    return {"file": (audio.name, audio.read_bytes(), "audio/wav")}


class StreamReader:
    """A `stream=true` request (or a jobs API event stream) read in a thread, event by event."""

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        self.events: list[str] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(method, url), kwargs=kwargs)
        self._thread.start()

    def _read(self, method: str, url: str, **kwargs: Any) -> None:
        try:
            with httpx.stream(method, url, timeout=WAIT_S, **kwargs) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line.removeprefix("data: "))
        except httpx.HTTPError as exc:  # a cut connection: what must never happen
            self.error = exc

    def finish(self) -> list[str]:
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "the stream never ended"
        assert self.error is None, f"the stream was cut: {self.error!r}"
        return self.events


def post_in_thread(url: str, **kwargs: Any) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: answers.append(httpx.post(url, timeout=WAIT_S, **kwargs))
    )
    thread.start()
    return thread, answers


def assert_gone_clean(server: ServerProcess, exit_code: int) -> None:
    assert exit_code == 0, server.log()
    assert server.leftovers() == []
    assert server.ffmpeg_processes() == []


def test_sigterm_refuses_new_work_cancels_the_queue_and_lets_the_running_job_finish(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    speech_wav_short: Path,
    speech_long: Path,
    noise_wav: Path,
    servers: list[ServerProcess],
) -> None:
    server = start_server_process(
        tiny_v3_ctc_checkpoint,
        tmp_path,
        gate=tmp_path / "gate",
        SHUTDOWN_GRACE_S="600",
        MAX_QUEUE="4",
    )
    servers.append(server)
    server.wait_ready()
    url = server.base_url
    stream = StreamReader(
        "POST", url + TRANSCRIPTIONS, files=upload(speech_long), data={"stream": "true"}
    )
    server.wait_held()
    queued_sync, sync_answers = post_in_thread(url + TRANSCRIPTIONS, files=upload(speech_wav_short))
    submitted = httpx.post(url + JOBS, files=upload(noise_wav))
    assert submitted.status_code == 202
    queued_job = submitted.json()["id"]
    until(lambda: len(httpx.get(url + "/health").json()["queue"]["jobs"]) == 3, "two queued jobs")

    mark = len(server.lines)
    server.send(signal.SIGTERM)
    server.wait_for_line(r"Stopping: new work refused, 2 queued job\(s\) cancelled", after=mark)

    queued_sync.join(WAIT_S)
    [refused_queued] = sync_answers
    assert refused_queued.status_code == 503
    assert refused_queued.headers["retry-after"] == "10"
    assert refused_queued.json()["error"]["code"] == "server_shutting_down"
    status = httpx.get(f"{url}{JOBS}/{queued_job}").json()
    assert status["status"] == "cancelled"
    assert status["error"]["code"] == "server_shutting_down"
    new = httpx.post(url + TRANSCRIPTIONS, files=upload(speech_wav_short))
    assert new.status_code == 503
    assert new.json()["error"]["code"] == "server_shutting_down"
    assert int(new.headers["retry-after"]) > 0
    ready = httpx.get(url + "/ready")
    assert (ready.status_code, ready.json()["status"]) == (503, "stopping")
    health = httpx.get(url + "/health")
    assert (health.status_code, health.json()["status"]) == (200, "stopping")

    server.open_gate()  # the running job finishes within its grace period
    events = stream.finish()
    assert stream.status == 200
    assert json.loads(events[-2])["type"] == "transcript.text.done"
    assert events[-1] == "[DONE]"
    assert_gone_clean(server, server.wait_exit())


def test_the_job_still_running_after_the_grace_period_is_cancelled_and_answers_after_a_restart(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    speech_sparse_long: Path,
    servers: list[ServerProcess],
) -> None:
    cache_dir = str(tmp_path / "cache")
    server = start_server_process(
        tiny_v3_ctc_checkpoint,
        tmp_path / "a",
        gate=tmp_path / "gate",
        CACHE_DIR=cache_dir,
        SHUTDOWN_GRACE_S="600",
    )
    servers.append(server)
    server.wait_ready()
    url = server.base_url
    submitted = httpx.post(url + JOBS, files=upload(speech_sparse_long))
    job_id = submitted.json()["id"]
    watcher = StreamReader("GET", f"{url}{JOBS}/{job_id}/events")
    server.wait_held()
    decoding = server.ffmpeg_processes()
    assert decoding, "ffmpeg should still be decoding the six-minute file while it is held"

    server.send(signal.SIGTERM)
    server.wait_for_line(r"the running job has 600 s to finish")
    server.send(signal.SIGTERM)  # a second signal ends the grace period at once
    server.wait_for_line(r"Grace period over: 1 job\(s\) cancelled")
    events = watcher.finish()
    error = json.loads(events[-1])
    assert error["type"] == "error"
    assert error["error"]["code"] == "server_shutting_down"
    assert_gone_clean(server, server.wait_exit())

    restarted = start_server_process(tiny_v3_ctc_checkpoint, tmp_path / "b", CACHE_DIR=cache_dir)
    servers.append(restarted)
    restarted.wait_ready()
    status = httpx.get(f"{restarted.base_url}{JOBS}/{job_id}")
    assert status.status_code == 200
    body = status.json()
    assert (body["id"], body["status"]) == (job_id, "cancelled")
    assert body["error"]["code"] == "job_cancelled"
    assert "server stopped" in body["error"]["message"]
    assert body["duration_s"] > 300  # what was known of the six-minute file is kept
    result = httpx.get(f"{restarted.base_url}{JOBS}/{job_id}/result")
    assert result.status_code == 409
    assert result.json()["error"]["code"] == "job_cancelled"
    assert httpx.get(f"{restarted.base_url}{JOBS}/{'A' * 22}").status_code == 404


def test_an_idle_server_exits_0_at_once_and_a_killed_ones_files_go_at_the_next_start(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    speech_long: Path,
    servers: list[ServerProcess],
) -> None:
    idle = start_server_process(tiny_v3_ctc_checkpoint, tmp_path / "idle")
    servers.append(idle)
    idle.wait_ready()
    idle.send(signal.SIGTERM)
    idle.wait_for_line("no job runs")
    assert_gone_clean(idle, idle.wait_exit())

    killed = start_server_process(tiny_v3_ctc_checkpoint, tmp_path / "k", gate=tmp_path / "gate")
    servers.append(killed)
    killed.wait_ready()
    StreamReader(
        "POST", killed.base_url + TRANSCRIPTIONS, files=upload(speech_long), data={"stream": "true"}
    )
    killed.wait_held()
    killed.send(signal.SIGKILL)
    assert killed.wait_exit() == -signal.SIGKILL
    [left] = killed.leftovers()  # the work dir with the upload and the spool in it
    assert any(left.rglob("upload-*"))

    successor = start_server_process(
        tiny_v3_ctc_checkpoint, tmp_path / "s", TEMP_DIR=str(killed.temp_dir)
    )
    servers.append(successor)
    successor.wait_ready()
    assert successor.count_lines(r"Removed 1 temp dir\(s\) left by a server") == 1
    assert not left.exists()


def test_a_server_stopped_while_its_model_loads_exits_0_and_clean(
    tiny_v3_ctc_checkpoint: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    server = start_server_process(
        tiny_v3_ctc_checkpoint,
        tmp_path,
        gate=tmp_path / "gate",
        GIGAAM_TEST_LOAD_GATE=str(tmp_path / "loaded"),  # never created: loading for good
    )
    servers.append(server)
    server.wait_for_line("Uvicorn running on")  # listening, the model still loading
    ready = httpx.get(server.base_url + "/ready")
    assert (ready.status_code, ready.json()["status"]) == (503, "loading")
    server.send(signal.SIGTERM)
    assert_gone_clean(server, server.wait_exit())
    # the idle worker thread may not have ended yet either: either line is right
    assert (
        server.count_lines(r"Exiting while the model loader (and the worker )?still works") == 1
    ), server.log()
