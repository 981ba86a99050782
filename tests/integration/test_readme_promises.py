"""What the README promises, through `gigaam-api serve` in its own process, configured by its
environment as a user configures it: a failure mid-stream, the keep-alive interval, the 500s
(ffmpeg missing, an internal error), and non-default LOG_JSON, LOG_LEVEL,
DEFAULT_RESPONSE_FORMAT, ALLOWED_MODELS, MODEL_ALIASES and QUANTIZE_INT8. (VAD_* are in
test_api_vad.py; the settings table itself in tests/unit/test_readme_settings.py.)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.metrics import scrape
from tests.fixtures.processes import WAIT_S, ServerProcess, start_server_process
from tests.fixtures.server import post_audio

TRANSCRIPTIONS = "/v1/audio/transcriptions"
ALIAS = "dictation"
MAX_AUDIO_S = 40


@pytest.fixture(scope="module")
def configured(
    tiny_v3_ctc_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server with every setting below away from its default."""
    server = start_server_process(
        tiny_v3_ctc_checkpoint,
        tmp_path_factory.mktemp("configured"),
        LOG_JSON="true",
        LOG_LEVEL="DEBUG",
        DEFAULT_RESPONSE_FORMAT="srt",
        ALLOWED_MODELS="v3_ctc",
        MODEL_ALIASES=ALIAS,
        MAX_AUDIO_SECONDS=str(MAX_AUDIO_S),
    )
    server.wait_ready()
    yield server
    server.stop()


def stream_lines(server: ServerProcess, audio: Path, data: dict[str, str]) -> list[str]:
    """Every line of a `stream=true` answer until the server ends it."""
    with httpx.stream(
        "POST",
        server.base_url + TRANSCRIPTIONS,
        files={"file": (audio.name, audio.read_bytes(), "audio/wav")},
        data={"stream": "true", **data},
        timeout=WAIT_S,
    ) as response:
        assert response.status_code == 200
        return [line for line in response.iter_lines() if line]


def events(lines: list[str]) -> list[str]:
    return [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]


def test_default_response_format_is_used_when_a_request_names_none(
    configured: ServerProcess, speech_wav_short: Path
) -> None:
    unnamed = post_audio(configured, speech_wav_short, {"model": ALIAS})
    assert unnamed.status_code == 200
    assert unnamed.headers["content-type"].startswith("application/x-subrip")
    assert unnamed.text.startswith("1\n00:00:") and " --> " in unnamed.text
    named = post_audio(configured, speech_wav_short, {"model": ALIAS, "response_format": "json"})
    assert set(named.json()) == {"text", "usage"}


def test_allowed_models_and_aliases_decide_what_a_request_may_name(
    configured: ServerProcess, speech_wav_short: Path
) -> None:
    for accepted in (ALIAS, "v3_ctc"):
        assert post_audio(configured, speech_wav_short, {"model": accepted}).status_code == 200
    for refused in ("whisper-1", "v3_rnnt"):  # a default alias, a default allowed model
        response = post_audio(configured, speech_wav_short, {"model": refused})
        assert response.status_code == 400, refused
        assert response.json()["error"]["code"] == "model_not_found", refused
    listed = [model["id"] for model in httpx.get(configured.base_url + "/v1/models").json()["data"]]
    assert "v3_ctc" in listed and "v3_rnnt" not in listed


def test_log_json_at_debug_writes_every_line_as_json_probes_included(
    configured: ServerProcess,
) -> None:
    request_id = httpx.get(configured.base_url + "/health").headers["x-request-id"]
    probe = json.loads(configured.wait_for_line(f'"request_id": "{request_id}"'))
    assert (probe["level"], probe["path"], probe["status"]) == ("DEBUG", "/health", 200)
    records = [json.loads(line) for line in list(configured.lines)]  # every line is JSON
    assert all({"ts", "level", "logger", "msg"} <= set(record) for record in records)
    assert any(record["msg"].startswith("Model ") for record in records)  # start-up, INFO


def test_a_failure_mid_stream_is_an_error_event_and_no_done(
    configured: ServerProcess, speech_unknown_duration: Path
) -> None:
    # no duration in the container: the 75 s file is found too long only while decoding
    data = {"model": ALIAS, "response_format": "json"}
    sent = events(stream_lines(configured, speech_unknown_duration, data))
    *deltas, last = sent
    assert deltas and all(json.loads(d)["type"] == "transcript.text.delta" for d in deltas)
    error = json.loads(last)
    assert error["type"] == "error"
    assert error["error"]["code"] == "audio_too_long"
    assert "[DONE]" not in sent


def test_sse_keepalive_s_sets_the_longest_silence(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
    speech_long: Path,
) -> None:
    server = start_server_process(
        tiny_v3_ctc_checkpoint, tmp_path, gate=tmp_path / "gate", SSE_KEEPALIVE_S="0.05"
    )
    servers.append(server)
    server.wait_ready()
    comments: list[str] = []
    sent: list[str] = []
    with httpx.stream(
        "POST",
        server.base_url + TRANSCRIPTIONS,
        files={"file": (speech_long.name, speech_long.read_bytes(), "audio/wav")},
        data={"stream": "true"},
        timeout=WAIT_S,
    ) as response:
        for line in response.iter_lines():
            if line.startswith(":") and sent:  # after the first delta: the run is held
                comments.append(line)
                if len(comments) == 40:  # 2 s at 0.05 s; 10 minutes at the default 15 s
                    server.open_gate()
            elif line.startswith("data: "):
                sent.append(line.removeprefix("data: "))
    # a held run says nothing new: every comment is one the silence made due
    assert all(c == ": keep-alive" or c.startswith(": progress ") for c in comments)
    assert len(comments) >= 40
    assert sent[-1] == "[DONE]"


def test_ffmpeg_missing_from_path_is_a_500_and_log_level_warning_hides_info(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
    speech_wav_short: Path,
) -> None:
    no_tools = tmp_path / "bin"
    no_tools.mkdir()
    server = start_server_process(
        tiny_v3_ctc_checkpoint, tmp_path, PATH=str(no_tools), LOG_LEVEL="WARNING"
    )
    servers.append(server)
    server.wait_ready()
    for _ in range(2):  # and the server still answers the next request the same way
        response = post_audio(server, speech_wav_short)
        assert response.status_code == 500
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("server_error", "audio_tool_missing")
        assert "not installed or not on PATH" in error["message"]
        assert response.headers["x-should-retry"] == "false"
    server.wait_for_line(r"ERROR .*POST /v1/audio/transcriptions 500")
    assert httpx.get(server.base_url + "/health").status_code == 200
    assert server.count_lines(r" INFO ") == 0  # "Model … loaded", uvicorn's start: hidden
    assert server.count_lines(r" WARNING | ERROR ") > 0


def test_an_internal_error_is_a_500_that_shows_no_internals_and_the_server_goes_on(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
    speech_wav_short: Path,
) -> None:
    server = start_server_process(tiny_v3_ctc_checkpoint, tmp_path)
    servers.append(server)
    server.wait_ready()
    [spool] = server.temp_dir.glob("gigaam-api-*/spool")
    shutil.rmtree(spool)  # the server's own work dir broken under it: an error no client made
    response = post_audio(server, speech_wav_short)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error"
    assert str(spool) not in error["message"] and "Errno" not in error["message"]
    server.wait_for_line(r"request failed")
    spool.mkdir()
    again = post_audio(server, speech_wav_short)
    assert again.status_code == 200
    assert again.json()["text"]
    # answered and logged by us; Starlette's handler used to re-raise it into uvicorn's log too
    assert server.count_lines(r"Exception in ASGI application") == 0
    server.assert_clean()


def test_quantize_int8_serves_with_int8_weights(
    tiny_v3_ctc_checkpoint: Path,
    tmp_path: Path,
    servers: list[ServerProcess],
    speech_wav_short: Path,
) -> None:
    server = start_server_process(tiny_v3_ctc_checkpoint, tmp_path, QUANTIZE_INT8="true")
    servers.append(server)
    server.wait_ready()
    [info] = [labels for (name, labels) in scrape(server.base_url) if name == "gigaam_model_info"]
    assert dict(info)["precision"] == "int8"
    response = post_audio(server, speech_wav_short, {"response_format": "verbose_json"})
    assert response.status_code == 200
    body = response.json()
    assert body["segments"] and body["duration"] > 0
