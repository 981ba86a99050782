"""/metrics, /ready and /health on a real server: open without the key, counting what happened.

One fresh server per test, so every count starts at zero.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from tests.fixtures.metrics import requests_counted, scrape
from tests.fixtures.server import (
    STRICT_API_KEY,
    ServerFactory,
    request_bytes,
    send_raw,
    until,
)

TRANSCRIPTIONS = "/v1/audio/transcriptions"


def test_probes_and_metrics_are_open_while_the_api_needs_the_key(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(api_key=STRICT_API_KEY)
    for path in ("/health", "/ready", "/metrics"):
        assert httpx.get(f"{server.base_url}{path}").status_code == 200, path
    assert httpx.get(f"{server.base_url}/v1/models").status_code == 401
    ready = httpx.get(f"{server.base_url}/ready").json()
    assert ready["status"] == "ready"


def test_ready_is_503_while_the_model_loads(server_factory: ServerFactory) -> None:
    release = threading.Event()

    def never_ready(*_: object) -> object:
        release.wait()
        raise RuntimeError("test over")

    server = server_factory(transcriber_factory=never_ready, wait_ready=False)
    try:
        ready = httpx.get(f"{server.base_url}/ready")
        assert (ready.status_code, ready.json()["status"]) == (503, "loading")
        assert ready.headers["retry-after"] == "10"
        samples = scrape(server.base_url)
        assert samples[("gigaam_ready", ())] == 0
        assert samples[("gigaam_model_loaded", ())] == 0
    finally:
        release.set()


def test_metrics_count_requests_jobs_audio_and_rtf_and_describe_the_model(
    server_factory: ServerFactory, speech_wav_short: Path, bad_inputs: dict[str, Path]
) -> None:
    server = server_factory()
    before = scrape(server.base_url)
    assert before[("gigaam_ready", ())] == 1
    assert before[("gigaam_model_load_seconds", ())] > 0
    info = {
        labels: value for (name, labels), value in before.items() if name == "gigaam_model_info"
    }
    [(labels, value)] = info.items()
    assert value == 1
    assert dict(labels) | {"version": ""} == {
        "model": Path(server.settings.model).stem,
        "status": "ok",
        "engine": "onnx",  # ENGINE=auto on a CPU
        "precision": "fp32",
        "device": "cpu",
        "version": "",
    }
    assert before[("gigaam_queue_max", ())] == 8
    assert before[("gigaam_temp_free_bytes", ())] > 0
    assert before[("process_resident_memory_bytes", ())] > 0
    assert before[("process_open_fds", ())] > 0

    audio = speech_wav_short.read_bytes()
    ok = httpx.post(
        f"{server.base_url}{TRANSCRIPTIONS}",
        files={"file": ("a.wav", audio, "audio/wav")},
        timeout=60,
    )
    assert ok.status_code == 200
    duration_s = ok.json()["usage"]["seconds"]
    bad = httpx.post(
        f"{server.base_url}{TRANSCRIPTIONS}",
        files={"file": ("a.bin", bad_inputs["text"].read_bytes(), "audio/wav")},
        timeout=60,
    )
    assert bad.status_code == 400
    missing = httpx.get(f"{server.base_url}{TRANSCRIPTIONS}/jobs/{'A' * 22}")
    assert missing.status_code == 404
    httpx.get(f"{server.base_url}/no/such/page")

    after = scrape(server.base_url)
    assert requests_counted(after, TRANSCRIPTIONS, "POST", 200) == 1
    assert requests_counted(after, TRANSCRIPTIONS, "POST", 400) == 1
    assert requests_counted(after, TRANSCRIPTIONS + "/jobs/{job_id}", "GET", 404) == 1
    assert requests_counted(after, "unmatched", "GET", 404) == 1
    assert requests_counted(after, "/metrics", "GET", 200) == 1  # the first scrape
    assert not any("A" * 22 in str(labels) for _, labels in after)  # ids never become labels
    assert after[("gigaam_jobs_total", (("status", "done"),))] == 1
    assert after[("gigaam_jobs_total", (("status", "failed"),))] == 1
    assert duration_s - 1 < after[("gigaam_audio_seconds_total", ())] <= duration_s
    assert after[("gigaam_rtf_count", ())] == 1
    assert after[("gigaam_rtf_sum", ())] > 0  # its size depends on the machine's speed
    assert after[("gigaam_queue_active", ())] == 0


def test_a_client_that_leaves_is_counted_as_499(
    server_factory: ServerFactory, speech_wav_short: Path
) -> None:
    server = server_factory()
    payload = request_bytes(server, speech_wav_short, {"model": "whisper-1"})
    sock = send_raw(server, payload[: len(payload) // 2])  # half the upload, then gone
    sock.close()
    until(
        lambda: requests_counted(scrape(server.base_url), TRANSCRIPTIONS, "POST", 499) == 1,
        "the abandoned upload counted as 499",
    )
    server.assert_clean()
