"""The jobs API client's waiting loop: statuses reported in order, failures, Ctrl-C cancels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from gigaam_api.remote import JobsClient, RemoteError, transcribe_remote


class ScriptedServer(JobsClient):
    """A JobsClient whose answers come from a list of statuses (no network)."""

    def __init__(self, statuses: list[dict[str, Any]]) -> None:
        super().__init__("http://nowhere:8000/v1/")
        self.statuses = statuses
        self.calls: list[str] = []

    def submit(self, path: Path, fields: dict[str, str]) -> dict[str, Any]:
        self.calls.append(f"submit {path.name} {fields}")
        return self.statuses.pop(0)

    def status(self, job_id: str) -> dict[str, Any]:
        self.calls.append(f"status {job_id}")
        return self.statuses.pop(0)

    def cancel(self, job_id: str) -> dict[str, Any]:
        self.calls.append(f"cancel {job_id}")
        return {"id": job_id, "status": "cancelled"}

    def result(self, job_id: str, response_format: str, granularities: Sequence[str]) -> str:
        self.calls.append(f"result {job_id} {response_format} {list(granularities)}")
        return "text\n"


def _status(state: str, **extra: Any) -> dict[str, Any]:
    return {"id": "j1", "status": state, **extra}


def test_the_base_url_may_name_the_api_root() -> None:
    assert JobsClient("http://nas:8000/v1/").base_url == "http://nas:8000"
    assert JobsClient("http://nas:8000").base_url == "http://nas:8000"


def test_waits_through_each_status_then_fetches_the_result(tmp_path: Path) -> None:
    server = ScriptedServer([_status("queued"), _status("running"), _status("done")])
    seen: list[str] = []
    text = transcribe_remote(
        server,
        tmp_path / "a.wav",
        "verbose_json",
        {"model": "v3_ctc"},
        lambda status: seen.append(status["status"]),
        poll_s=0,
    )
    assert text == "text\n"
    assert seen == ["queued", "running", "done"]
    assert server.calls[-1] == "result j1 verbose_json ['segment', 'word']"


def test_a_failed_job_is_an_error_with_the_servers_message(tmp_path: Path) -> None:
    failed = _status("failed", error={"message": "Audio is too long"})
    server = ScriptedServer([_status("running"), failed])
    with pytest.raises(RemoteError, match="failed: Audio is too long"):
        transcribe_remote(server, tmp_path / "a.wav", "text", {}, lambda _: None, poll_s=0)


def test_ctrl_c_cancels_the_job_on_the_server(tmp_path: Path) -> None:
    server = ScriptedServer([_status("running"), _status("running")])

    def interrupt(status: dict[str, Any]) -> None:
        if len(server.calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        transcribe_remote(server, tmp_path / "a.wav", "text", {}, interrupt, poll_s=0)
    assert server.calls[-1] == "cancel j1"
