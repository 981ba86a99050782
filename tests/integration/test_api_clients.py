"""Requests shaped exactly like the real clients of peers.md §3, sent as raw HTTP."""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.audio import wav_seconds
from tests.fixtures.server import OBSIDIAN_ORIGIN, STRICT_API_KEY, RunningServer

SEGMENT_NUMBERS = ("seek", "start", "end", "temperature", "avg_logprob", "compression_ratio")


def _url(server: RunningServer) -> str:
    return f"{server.base_url}/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def reference_text(api_server: RunningServer, speech_wav_short: Path) -> str:
    response = httpx.post(
        _url(api_server),
        files={"file": ("speech.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"model": "v3_ctc"},
        timeout=60,
    )
    assert response.status_code == 200
    text: str = response.json()["text"]
    return text


def test_n8n_whisper_1_with_language(
    api_server: RunningServer, audio_formats: dict[str, Path], reference_text: str
) -> None:
    mp3 = audio_formats["mp3"]
    response = httpx.post(
        _url(api_server),
        files={"file": ("data.mp3", mp3.read_bytes(), "audio/mpeg")},
        data={"model": "whisper-1", "language": "ru"},
        headers={"Authorization": "Bearer n8n-key"},
        timeout=60,
    )
    assert response.status_code == 200
    assert set(response.json()) == {"text", "usage"}
    assert isinstance(response.json()["text"], str)


def test_open_webui_uuid_name_no_content_type(
    api_server: RunningServer, audio_formats: dict[str, Path], reference_text: str
) -> None:
    # requests' files={"file": (name, fh)}: the part has no Content-Type; Bearer with an empty key
    webm = audio_formats.get("webm") or audio_formats["ogg"]
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{uuid.uuid4()}{webm.suffix}"\r\n\r\n'
        ).encode()
        + webm.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = httpx.post(
        _url(api_server),
        content=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Authorization": "Bearer",  # "Bearer " with the trailing space, as h11 parses it
            "X-OpenWebUI-User-Name": "test",
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    typed = httpx.post(
        _url(api_server),
        files={"file": (f"audio{webm.suffix}", webm.read_bytes(), "audio/webm")},
        data={"model": "whisper-1"},
        timeout=60,
    )
    assert response.json()["text"] == typed.json()["text"] != ""


def test_home_assistant_prompt_and_ru(api_server: RunningServer, speech_wav_short: Path) -> None:
    response = httpx.post(
        _url(api_server),
        files={"file": ("a.wav", speech_wav_short.read_bytes())},
        data={
            "model": "gpt-4o-mini-transcribe",
            "response_format": "json",
            "language": "ru",
            "prompt": "Привет, дом. Включи свет на кухне.",
            "temperature": "0",
        },
        timeout=10,  # einToast's client waits 10 s
    )
    assert response.status_code == 200
    assert response.json()["usage"]["type"] == "duration"


@pytest.mark.parametrize("language", ["", "ru-RU", "Russian", "русский", "en"])
def test_language_in_any_spelling_is_accepted(
    api_server: RunningServer, speech_wav_short: Path, reference_text: str, language: str
) -> None:
    response = httpx.post(
        _url(api_server),
        files={"file": ("note.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"model": "whisper-1", "language": language},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json()["text"] == reference_text


def test_buzz_word_only_verbose_json_has_no_segments_key(
    api_server: RunningServer, audio_formats: dict[str, Path]
) -> None:
    response = httpx.post(
        _url(api_server),
        files={"file": ("buzz.mp3", audio_formats["mp3"].read_bytes(), "audio/mpeg")},
        data={
            "model": "whisper-1",
            "response_format": "verbose_json",
            "prompt": "",
            "language": "ru",
            "timestamp_granularities[]": "word",
        },
        timeout=60,
    )
    body = response.json()
    assert response.status_code == 200
    assert "segments" not in body
    assert isinstance(body["words"], list)
    assert all(set(word) == {"word", "start", "end"} for word in body["words"])


def test_array_field_without_brackets_is_read(
    api_server: RunningServer, speech_wav_short: Path
) -> None:
    response = httpx.post(
        _url(api_server),
        files={"file": ("a.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={"response_format": "verbose_json", "timestamp_granularities": "word"},
        timeout=60,
    )
    assert "words" in response.json()
    assert "segments" not in response.json()


def test_vercel_ai_sdk_fields_parse_against_its_schema(
    api_server: RunningServer, speech_wav_short: Path, reference_text: str
) -> None:
    response = httpx.post(
        _url(api_server),
        files={"file": ("audio.wav", speech_wav_short.read_bytes(), "audio/wav")},
        data={
            "model": "whisper-1",
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"],
            "include[]": "logprobs",
            "language": "ru",
            "prompt": "",
            "temperature": "0",
        },
        timeout=60,
    )
    body: dict[str, Any] = response.json()
    assert response.status_code == 200
    assert body["language"] == "russian"  # the SDK maps full names to ISO codes
    assert isinstance(body["duration"], float)
    assert body["text"] == reference_text
    for segment in body["segments"]:
        assert isinstance(segment["id"], int)
        assert isinstance(segment["text"], str)
        assert isinstance(segment["tokens"], list)
        assert isinstance(segment["no_speech_prob"], float)
        assert all(isinstance(segment[name], int | float) for name in SEGMENT_NUMBERS)


def test_obsidian_preflight_and_empty_language(
    strict_server: RunningServer, audio_formats: dict[str, Path]
) -> None:
    preflight = httpx.options(
        _url(strict_server),
        headers={
            "Origin": OBSIDIAN_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == OBSIDIAN_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    audio = audio_formats.get("webm") or audio_formats["ogg"]
    response = httpx.post(
        _url(strict_server),
        files={"file": (f"recording{audio.suffix}", audio.read_bytes(), "audio/webm")},
        data={"model": "whisper-1", "language": ""},
        headers={"Origin": OBSIDIAN_ORIGIN, "Authorization": f"Bearer {STRICT_API_KEY}"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == OBSIDIAN_ORIGIN
    assert "text" in response.json()


def test_other_origins_get_no_cors(strict_server: RunningServer, api_server: RunningServer) -> None:
    for server, origin in ((strict_server, "https://evil.example"), (api_server, OBSIDIAN_ORIGIN)):
        preflight = httpx.options(
            _url(server),
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers


def test_every_audio_format_transcribes(
    api_server: RunningServer,
    audio_formats: dict[str, Path],
    speech_wav_short: Path,
    reference_text: str,
) -> None:
    duration_s = wav_seconds(speech_wav_short)
    for name, path in audio_formats.items():
        response = httpx.post(
            _url(api_server),
            files={"file": (path.name, path.read_bytes())},
            data={"model": "whisper-1", "response_format": "verbose_json"},
            timeout=60,
        )
        assert response.status_code == 200, f"{name}: {response.text}"
        body = response.json()
        assert body["duration"] == pytest.approx(duration_s, abs=0.15), name
        assert body["usage"] == {"type": "duration", "seconds": math.ceil(body["duration"])}, name
        assert body["segments"], name
        if name in ("wav", "flac"):  # the very samples: the very text
            assert body["text"] == reference_text, name
