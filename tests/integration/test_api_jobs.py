"""The jobs API end to end on a real server: submit, status and progress, events, every result
format, cancel, errors, the key on every route, /health's queue view and the CLI's --server."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigaam_api import cli
from tests.fixtures.audio import wav_seconds
from tests.fixtures.gated import Gate, gated_factory
from tests.fixtures.server import (
    STRICT_API_KEY,
    WAIT_S,
    RunningServer,
    ServerFactory,
    until,
)

JOBS = "/v1/audio/transcriptions/jobs"
STATUS_KEYS = {
    "id",
    "object",
    "status",
    "created_at",
    "model",
    "queue_position",
    "progress",
    "processed_s",
    "duration_s",
    "eta_s",
    "error",
}
RESULT_QUERIES: list[dict[str, Any]] = [
    {"response_format": "json"},
    {"response_format": "text"},
    {"response_format": "srt"},
    {"response_format": "vtt"},
    {"response_format": "verbose_json"},
    {"response_format": "verbose_json", "timestamp_granularities[]": "word"},
    {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
]


def submit(server: RunningServer, audio: Path, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}{JOBS}",
        files={"file": (audio.name, audio.read_bytes(), "audio/wav")},
        data={"model": "whisper-1"},
        headers=headers,
        timeout=WAIT_S,
    )


def status(server: RunningServer, job_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}{JOBS}/{job_id}", timeout=WAIT_S)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == STATUS_KEYS
    return body


def read_events(server: RunningServer, job_id: str, into: list[str]) -> threading.Thread:
    def follow() -> None:
        with httpx.stream("GET", f"{server.base_url}{JOBS}/{job_id}/events", timeout=WAIT_S) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line:
                    into.append(line)

    thread = threading.Thread(target=follow)
    thread.start()
    return thread


def test_submit_follow_and_fetch_every_format(
    server_factory: ServerFactory, speech_wav_short: Path, speech_long: Path
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate), sse_keepalive_s=0.2)
    first = submit(server, speech_wav_short)
    assert first.status_code == 202
    job_id = first.json()["id"]
    assert len(job_id) >= 22
    assert first.headers["location"] == f"{JOBS}/{job_id}"
    assert first.headers["x-job-id"] == job_id
    until(lambda: gate.waiting == 1, "the job to be held")
    second_id = submit(server, speech_long).json()["id"]

    running, queued = status(server, job_id), status(server, second_id)
    assert (running["object"], running["status"], running["model"]) == (
        "transcription.job",
        "running",
        "v3_ctc",
    )
    assert running["queue_position"] is None
    assert running["progress"] == 0.0 and running["eta_s"] is None  # held before any segment
    assert running["duration_s"] == pytest.approx(wav_seconds(speech_wav_short), abs=0.01)
    assert (queued["status"], queued["queue_position"], queued["duration_s"]) == (
        "queued",
        1,
        None,
    )
    health = httpx.get(f"{server.base_url}/health").json()["queue"]
    assert health["active"] == 2
    assert [(job["status"], job["queue_position"]) for job in health["jobs"]] == [
        ("running", None),
        ("queued", 1),
    ]
    assert job_id not in json.dumps(health)  # /health is public: no ids
    early = httpx.get(f"{server.base_url}{JOBS}/{job_id}/result", timeout=WAIT_S)
    assert early.status_code == 409
    assert early.json()["error"]["code"] == "job_not_done"

    events: list[str] = []
    follower = read_events(server, job_id, events)
    until(lambda: ": progress 0.00" in events, "a progress comment from the held job")
    gate.open()
    follower.join(WAIT_S)
    until(lambda: status(server, second_id)["status"] == "done", "the second job")
    done = status(server, job_id)
    assert (done["status"], done["progress"], done["eta_s"], done["error"]) == (
        "done",
        1.0,
        0.0,
        None,
    )
    assert done["processed_s"] == done["duration_s"]

    data = [json.loads(line[6:]) for line in events if line.startswith("data: {")]
    assert [event["type"] for event in data[:-1]] == ["transcript.text.delta"] * (len(data) - 1)
    assert data[-1]["type"] == "transcript.text.done"
    assert events[-1] == "data: [DONE]"
    late: list[str] = []
    read_events(server, job_id, late).join(WAIT_S)  # a late watcher gets it all replayed
    assert [line for line in late if not line.startswith(":")] == [
        line for line in events if not line.startswith(":")
    ]

    for query in RESULT_QUERIES:
        fetched = httpx.get(f"{server.base_url}{JOBS}/{job_id}/result", params=query)
        direct = httpx.post(  # the OpenAI endpoint, answered by the same finished job
            f"{server.base_url}/v1/audio/transcriptions",
            files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
            data=query,
            timeout=WAIT_S,
        )
        assert fetched.status_code == direct.status_code == 200, (query, fetched.text)
        assert fetched.headers["content-type"] == direct.headers["content-type"]
        assert fetched.content == direct.content
        assert direct.headers["x-job-id"] == job_id
    assert data[-1]["text"] == httpx.get(f"{server.base_url}{JOBS}/{job_id}/result").json()["text"]
    assert gate.calls == 2
    server.assert_clean()


def test_cancel_a_running_and_a_queued_job(
    server_factory: ServerFactory, speech_wav_short: Path, speech_long: Path
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate))
    running_id = submit(server, speech_wav_short).json()["id"]
    until(lambda: gate.waiting == 1, "the job to be held")
    queued_id = submit(server, speech_long).json()["id"]
    assert server.runtime.worker.active == 2

    cancelled = httpx.delete(f"{server.base_url}{JOBS}/{queued_id}").json()
    assert (cancelled["status"], cancelled["error"]["code"]) == ("cancelled", "job_cancelled")
    assert server.runtime.worker.active == 1  # a queued job leaves the line at once

    cancelled = httpx.delete(f"{server.base_url}{JOBS}/{running_id}").json()
    assert cancelled["status"] == "cancelled"
    result = httpx.get(f"{server.base_url}{JOBS}/{running_id}/result")
    assert result.status_code == 409
    assert result.json()["error"]["code"] == "job_cancelled"
    assert result.headers["x-should-retry"] == "false"
    server.assert_clean()
    assert gate.calls == 1  # the queued one never ran
    again = httpx.delete(f"{server.base_url}{JOBS}/{running_id}").json()
    assert again["status"] == "cancelled"  # idempotent


def test_delete_cancels_a_job_a_sync_request_runs(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate))
    responses: list[httpx.Response] = []
    caller = threading.Thread(
        target=lambda: responses.append(
            httpx.post(
                f"{server.base_url}/v1/audio/transcriptions",
                files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
                data={"response_format": "text"},
                timeout=WAIT_S,
            )
        )
    )
    caller.start()
    until(lambda: gate.waiting == 1, "the job to be held")
    [job] = server.runtime.jobs.active()
    assert httpx.delete(f"{server.base_url}{JOBS}/{job.id}").json()["status"] == "cancelled"
    caller.join(WAIT_S)
    [response] = responses
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_cancelled"
    server.assert_clean()


def test_a_jobs_api_submission_pins_a_shared_job_against_its_sync_client_leaving(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    gate = Gate()
    server = server_factory(transcriber_factory=gated_factory(gate))  # JOB_GRACE_S=0
    with httpx.stream(
        "POST",
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"stream": "true"},
        timeout=WAIT_S,
    ) as response:
        until(lambda: gate.waiting == 1, "the job to be held")
        submitted = submit(server, speech_wav_short).json()
        assert submitted["id"] == response.headers["x-job-id"]  # the same job, not a new one
    [job] = server.runtime.jobs.active()
    until(lambda: job.holders == 0, "the stream client to be gone")
    assert job.status == "running"  # pinned: leaving no longer cancels it
    gate.open()
    until(lambda: status(server, job.id)["status"] == "done", "the job to finish")
    assert gate.calls == 1
    server.assert_clean()


def test_unknown_ids_and_bad_queries_are_openai_errors(api_server: RunningServer) -> None:
    for path in ("AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAA/result", "a.b"):
        response = httpx.get(f"{api_server.base_url}{JOBS}/{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
    response = httpx.delete(f"{api_server.base_url}{JOBS}/nope")
    assert response.json()["error"]["code"] == "job_not_found"


def test_bad_result_format_is_a_400(api_server: RunningServer, speech_wav_short: Path) -> None:
    job_id = submit(api_server, speech_wav_short).json()["id"]
    response = httpx.get(
        f"{api_server.base_url}{JOBS}/{job_id}/result", params={"response_format": "docx"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "response_format"
    api_server.assert_clean()


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": STRICT_API_KEY}]
)
def test_every_jobs_route_needs_the_key(
    strict_server: RunningServer, speech_wav_short: Path, headers: dict[str, str]
) -> None:
    url = f"{strict_server.base_url}{JOBS}"
    job_id = "A" * 22
    calls = [
        httpx.post(url, files={"file": ("a.wav", b"RIFF", "audio/wav")}, headers=headers),
        httpx.get(f"{url}/{job_id}", headers=headers),
        httpx.get(f"{url}/{job_id}/events", headers=headers),
        httpx.get(f"{url}/{job_id}/result", headers=headers),
        httpx.delete(f"{url}/{job_id}", headers=headers),
    ]
    for response in calls:
        assert response.status_code == 401, response.request.url
        assert response.json()["error"]["code"] == "invalid_api_key"
    key = {"Authorization": f"Bearer {STRICT_API_KEY}"}
    assert httpx.get(f"{url}/{job_id}", headers=key).status_code == 404  # the key lets one in
    submitted = submit(strict_server, speech_wav_short, **key)
    assert submitted.status_code == 202
    strict_server.assert_clean()


def test_the_jobs_api_is_in_the_openapi_document(api_server: RunningServer) -> None:
    paths = httpx.get(f"{api_server.base_url}/openapi.json").json()["paths"]
    assert set(paths[JOBS]) == {"post"}
    assert set(paths[f"{JOBS}/{{job_id}}"]) == {"get", "delete"}
    assert f"{JOBS}/{{job_id}}/events" in paths
    assert f"{JOBS}/{{job_id}}/result" in paths
    schema = paths[JOBS]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert "file" in schema["properties"]


def test_cli_transcribes_on_a_server_with_a_progress_bar(
    server_factory: ServerFactory,
    speech_long: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = server_factory(api_key=STRICT_API_KEY)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("API_KEY", STRICT_API_KEY)
    exit_code = cli.main(["transcribe", str(speech_long), "-f", "srt", "--server", server.base_url])
    output = capsys.readouterr()
    assert exit_code == 0, output.err
    direct = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("long.wav", speech_long.read_bytes(), "audio/wav")},
        data={"response_format": "srt"},
        headers={"Authorization": f"Bearer {STRICT_API_KEY}"},
        timeout=WAIT_S,
    )
    assert output.out == direct.text  # the same job's result, fetched through the jobs API
    # without a terminal the bar is one line per 10 %, ending at 100 %
    bar = [line for line in output.err.splitlines() if line.startswith(f"{speech_long.name} [")]
    assert bar and "100%" in bar[-1]
    assert "of" in bar[-1] and " s" in bar[-1]

    wrong = cli.main(
        ["transcribe", str(speech_long), "--server", server.base_url, "--api-key", "nope"]
    )
    assert wrong == 1
    assert "401" in capsys.readouterr().err
    server.assert_clean()
