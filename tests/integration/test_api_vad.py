"""What decides the cut reaches the VAD and the chunk planner through the real server: a
request's `chunking_strategy` and the VAD_* settings.

Each answer's chunks (the verbose_json `seek` of its segments, in 10 ms) are compared with
silero's own regions for the same options, merged by the documented rule (tests/reference.py),
so a field or setting that is parsed but never used cannot pass.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigaam_api.types import SAMPLE_RATE, ChunkingOptions, VadOptions
from tests.fixtures.audio import wav_samples
from tests.fixtures.server import WAIT_S, RunningServer, Served, ServerFactory
from tests.fixtures.silero_reference import silero_speech_regions
from tests.reference import merge_regions

DEFAULT = VadOptions()


def expected_seeks(audio: Path, vad: VadOptions, chunking: ChunkingOptions) -> list[int]:
    """Where the chunks start (10 ms units) by the reference for these options."""
    samples = wav_samples(audio)
    chunks = merge_regions(silero_speech_regions(samples, vad), chunking, len(samples))
    return [round(start / SAMPLE_RATE * 100) for start, _ in chunks]


def seeks(server: Served, audio: Path, data: dict[str, str]) -> list[int]:
    """The chunks a verbose_json answer's segments came from, in order."""
    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (audio.name, audio.read_bytes(), "audio/wav")},
        data={"model": "whisper-1", "response_format": "verbose_json", **data},
        timeout=WAIT_S,
    )
    assert response.status_code == 200, response.text
    found: list[int] = []
    for segment in response.json()["segments"]:
        if not found or found[-1] != segment["seek"]:
            found.append(segment["seek"])
    return found


@pytest.mark.parametrize(
    ("fields", "vad"),
    [
        ({"chunking_strategy": "auto"}, DEFAULT),
        (
            {"chunking_strategy": json.dumps({"type": "server_vad", "prefix_padding_ms": 600})},
            replace(DEFAULT, speech_pad_ms=600),
        ),
        (
            {
                "chunking_strategy[type]": "server_vad",
                "chunking_strategy[threshold]": "0.8",
                "chunking_strategy[silence_duration_ms]": "900",
                "chunking_strategy[prefix_padding_ms]": "0",
            },
            VadOptions(threshold=0.8, min_silence_duration_ms=900, speech_pad_ms=0),
        ),
    ],
    ids=["auto", "json-string", "bracket-fields"],
)
def test_chunking_strategy_changes_what_the_vad_cuts(
    api_server: RunningServer, speech_long: Path, fields: dict[str, str], vad: VadOptions
) -> None:
    expected = expected_seeks(speech_long, vad, ChunkingOptions())
    assert seeks(api_server, speech_long, fields) == expected
    if vad != DEFAULT:  # the request's options made a difference the default would not
        assert expected != expected_seeks(speech_long, DEFAULT, ChunkingOptions())


def test_vad_settings_change_the_regions_and_the_chunks(
    server_factory: ServerFactory, speech_long: Path
) -> None:
    settings: dict[str, Any] = {
        "vad_threshold": 0.7,
        "vad_min_duration": 4.0,
        "vad_max_duration": 6.0,
        "vad_strict_limit": 8.0,
        "vad_new_chunk_threshold": 0.5,
    }
    server = server_factory(**settings)
    chunking = ChunkingOptions(
        min_duration_s=4.0, max_duration_s=6.0, strict_limit_s=8.0, new_chunk_threshold_s=0.5
    )
    expected = expected_seeks(speech_long, VadOptions(threshold=0.7), chunking)
    assert seeks(server, speech_long, {}) == expected
    assert expected != expected_seeks(speech_long, DEFAULT, ChunkingOptions())
