"""What a person reading a real server's log sees while it loads, serves, and fails to start."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gigaam_api import permissions
from gigaam_api.bootstrap import build_transcriber
from gigaam_api.settings import Settings
from gigaam_api.types import DownloadProgress, Transcriber
from tests.fixtures.cdn import FakeCdn
from tests.fixtures.server import WAIT_S, RunningServer, ServerFactory, make_settings, start_server


@pytest.fixture
def collected(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """caplog, also fed by the package's loggers (they do not propagate to the root logger)."""
    package = logging.getLogger("gigaam_api")
    package.addHandler(caplog.handler)
    yield caplog
    package.removeHandler(caplog.handler)


def _request_level(
    log: pytest.LogCaptureFixture, method: str, path: str, status: int, timeout_s: float = WAIT_S
) -> int:
    """The level of the request line for method, path and status (written after the response)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for record in list(log.records):
            fields = getattr(record, "fields", None)
            if fields and (fields["method"], fields["path"], fields["status"]) == (
                method,
                path,
                status,
            ):
                return record.levelno
        time.sleep(0.02)
    raise AssertionError(f"no log line for {method} {path} {status}")


def _wait_for_health(server: RunningServer, status: str) -> httpx.Response:
    deadline = time.monotonic() + 120
    while True:
        health = httpx.get(f"{server.base_url}/health")
        if health.json()["status"] == status or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_while_loading_probes_are_debug_a_refused_request_a_warning_and_nothing_an_error(
    server_factory: ServerFactory, speech_wav_short: Path, collected: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def slow_factory(
        settings: Settings, on_progress: Callable[[DownloadProgress], None]
    ) -> Transcriber:
        release.wait(60)
        return build_transcriber(settings, on_progress)

    server = server_factory(transcriber_factory=slow_factory, wait_ready=False, log_level="DEBUG")
    assert httpx.get(f"{server.base_url}/health").status_code == 503
    refused = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"model": "whisper-1"},
    )
    assert refused.status_code == 503
    release.set()
    assert _wait_for_health(server, "ok").status_code == 200

    assert _request_level(collected, "GET", "/health", 503) == logging.DEBUG
    assert _request_level(collected, "GET", "/health", 200) == logging.DEBUG
    assert _request_level(collected, "POST", "/v1/audio/transcriptions", 503) == logging.WARNING
    assert [r.getMessage() for r in collected.records if r.levelno >= logging.ERROR] == []
    loaded = [r for r in collected.records if r.getMessage().startswith("Model v3_ctc loaded")]
    assert [r.levelno for r in loaded] == [logging.INFO]


def test_unwritable_models_dir_names_the_fix_in_health_and_in_one_error_line(
    fake_cdn: FakeCdn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    collected: pytest.LogCaptureFixture,
) -> None:
    # A container whose /sys is a host folder, and the image's user: the tests run as root, and
    # sysfs refuses new directories even to root, so the failure itself is real.
    marker = tmp_path / ".dockerenv"
    marker.touch()
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "1 0 0:1 / / rw - overlay overlay rw\n2 1 0:2 / /sys rw - sysfs sysfs rw\n"
    )
    monkeypatch.setattr(permissions, "_CONTAINER_MARKERS", (marker,))
    monkeypatch.setattr(permissions, "_MOUNTINFO", mountinfo)
    monkeypatch.setattr(permissions, "_current_user", lambda: (1000, 1000))

    settings = make_settings(
        Path("v3_ctc"), Path("/sys/kernel/gigaam-models"), weights_url=fake_cdn.url
    )
    server = start_server(settings, wait_ready=False)
    try:
        health = _wait_for_health(server, "error")
    finally:
        server.stop()

    fix = "sudo chown -R 1000:1000 ./sys && docker compose restart"
    assert health.status_code == 503
    assert health.json()["error"].startswith("ModelsDirError: Cannot create the models directory")
    assert fix in health.json()["error"]
    errors = [r for r in collected.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert fix in errors[0].getMessage()
    assert errors[0].exc_info is None  # the message is the explanation; no traceback
    assert fake_cdn.requests == []
