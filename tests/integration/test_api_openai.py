"""The official openai client against a real server: every format, granularities, streaming."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import httpx
import openai
import pytest

from testkit.checkpoints import RUSSIAN_CHARS
from tests.fixtures.audio import wav_seconds
from tests.fixtures.server import RunningServer

SRT_TIME = re.compile(r"^\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}$")
VTT_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}$")
SEGMENT_FIELDS = {
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
}


@pytest.fixture(scope="module")
def client(api_server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{api_server.base_url}/v1", api_key="unused", max_retries=0
    ) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def sync_json(client: openai.OpenAI, speech_wav_short: Path) -> openai.types.audio.Transcription:
    with speech_wav_short.open("rb") as audio:
        return client.audio.transcriptions.create(model="whisper-1", file=audio)


def test_json_has_text_and_duration_usage(
    sync_json: openai.types.audio.Transcription, speech_wav_short: Path
) -> None:
    assert sync_json.text.strip() != ""
    assert sync_json.text == sync_json.text.strip()
    usage = sync_json.model_dump()["usage"]
    assert usage["type"] == "duration"
    assert usage["seconds"] in (8, 9)  # ceil of the ~8 s clip


def test_text_format_is_the_json_text_plus_newline(
    client: openai.OpenAI, speech_wav_short: Path, sync_json: openai.types.audio.Transcription
) -> None:
    with speech_wav_short.open("rb") as audio:
        text = client.audio.transcriptions.create(
            model="v3_ctc", file=audio, response_format="text"
        )
    assert text == f"{sync_json.text}\n"


def test_verbose_json_default_is_segments_only(
    client: openai.OpenAI, speech_wav_short: Path, sync_json: openai.types.audio.Transcription
) -> None:
    with speech_wav_short.open("rb") as audio:
        verbose = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json"
        )
    raw = verbose.model_dump(exclude_unset=True)
    assert raw["language"] == "russian"
    assert raw["task"] == "transcribe"
    assert verbose.duration == pytest.approx(wav_seconds(speech_wav_short), abs=0.01)
    assert verbose.text == sync_json.text
    assert "words" not in raw
    assert verbose.segments
    for index, segment in enumerate(raw["segments"]):
        assert set(segment) == SEGMENT_FIELDS
        assert segment["id"] == index
        assert segment["text"].startswith(" ")
        assert 0.0 <= segment["start"] <= segment["end"] <= verbose.duration
    joined = " ".join(segment.text.strip() for segment in verbose.segments)
    assert joined == verbose.text
    # tokens: the character model's ids (the checkpoint's vocabulary), spaces between words kept
    for segment in verbose.segments:
        assert segment.tokens
        spelled = "".join(RUSSIAN_CHARS[token] for token in segment.tokens)
        assert " ".join(spelled.split()) == segment.text.strip()


@pytest.mark.parametrize(
    ("granularities", "has_segments", "has_words"),
    [(["word"], False, True), (["segment"], True, False), (["word", "segment"], True, True)],
)
def test_verbose_json_granularities(
    client: openai.OpenAI,
    speech_wav_short: Path,
    granularities: list[Literal["word", "segment"]],
    has_segments: bool,
    has_words: bool,
) -> None:
    with speech_wav_short.open("rb") as audio:
        verbose = client.audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=granularities,
        )
    raw = verbose.model_dump(exclude_unset=True)
    assert ("segments" in raw) is has_segments
    assert ("words" in raw) is has_words
    if has_words:
        words = raw["words"]
        assert words
        assert " ".join(word["word"] for word in words) == verbose.text
        starts = [word["start"] for word in words]
        assert starts == sorted(starts)
        assert all(word["start"] <= word["end"] <= verbose.duration for word in words)


def test_srt_cues_are_numbered_and_timed(client: openai.OpenAI, speech_wav_short: Path) -> None:
    with speech_wav_short.open("rb") as audio:
        srt = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="srt"
        )
    blocks = [block.split("\n") for block in srt.strip("\n").split("\n\n")]
    assert blocks
    for number, block in enumerate(blocks, start=1):
        assert block[0] == str(number)
        assert SRT_TIME.match(block[1])
        assert 1 <= len(block[2:]) <= 2


def test_vtt_has_header_and_cues(client: openai.OpenAI, speech_wav_short: Path) -> None:
    with speech_wav_short.open("rb") as audio:
        vtt = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="vtt"
        )
    assert vtt.startswith("WEBVTT\n\n")
    cues = vtt.removeprefix("WEBVTT\n\n").strip("\n").split("\n\n")
    assert cues
    assert all(VTT_TIME.match(cue.split("\n")[0]) for cue in cues)


def test_stream_events_deltas_then_done(
    client: openai.OpenAI, speech_long: Path, api_server: RunningServer
) -> None:
    with speech_long.open("rb") as audio:
        sync = client.audio.transcriptions.create(model="whisper-1", file=audio)
    with speech_long.open("rb") as audio:
        stream = client.audio.transcriptions.create(model="whisper-1", file=audio, stream=True)
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[-1] == "transcript.text.done"
    assert kinds[:-1] == ["transcript.text.delta"] * (len(kinds) - 1)
    assert len(kinds) >= 3  # several segments of the ~75 s file
    deltas = "".join(event.delta for event in events[:-1])  # type: ignore[union-attr]
    done = events[-1]
    assert isinstance(done, openai.types.audio.TranscriptionTextDoneEvent)
    assert deltas == done.text == sync.text
    assert done.model_dump(exclude_none=True)["usage"] == sync.model_dump()["usage"]
    api_server.wait_idle()
    assert api_server.upload_files() == []


def test_stream_text_format_streams_too(client: openai.OpenAI, speech_wav_short: Path) -> None:
    with speech_wav_short.open("rb") as audio:
        events = list(
            client.audio.transcriptions.create(
                model="whisper-1", file=audio, response_format="text", stream=True
            )
        )
    assert events[-1].type == "transcript.text.done"


def test_stream_with_verbose_json_gives_the_normal_response(
    api_server: RunningServer, speech_wav_short: Path
) -> None:
    response = httpx.post(
        f"{api_server.base_url}/v1/audio/transcriptions",
        files={"file": ("speech.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"model": "whisper-1", "response_format": "verbose_json", "stream": "true"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["language"] == "russian"
    assert "segments" in body


def test_bad_model_is_a_400_with_param(client: openai.OpenAI, speech_wav_short: Path) -> None:
    with speech_wav_short.open("rb") as audio, pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model="whisper-2", file=audio)
    assert caught.value.status_code == 400
    assert caught.value.param == "model"
    assert caught.value.code == "model_not_found"


def test_allowed_but_unloaded_model_runs_the_loaded_one(
    client: openai.OpenAI, speech_wav_short: Path, sync_json: openai.types.audio.Transcription
) -> None:
    with speech_wav_short.open("rb") as audio:
        response = client.audio.transcriptions.with_raw_response.create(
            model="v3_e2e_rnnt", file=audio
        )
    assert response.headers["x-model"] == "v3_ctc"
    assert response.parse().text == sync_json.text
