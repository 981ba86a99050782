"""A job's key: the same audio and result-changing options give the same key, anything else not."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gigaam_api.server.forms import parse_transcription_form
from gigaam_api.server.intake import job_key, job_options
from gigaam_api.settings import Settings
from gigaam_api.types import ChunkingOptions, VadOptions
from tests.unit.server.fakes import ScriptedTranscriber

AUDIO = "0" * 64


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, model="v3_ctc", models_dir=str(tmp_path))


def test_every_format_shares_one_key_with_word_timestamps_on(settings: Settings) -> None:
    transcriber = ScriptedTranscriber()
    keys = set()
    for response_format in ("json", "text", "verbose_json", "srt", "vtt"):
        form = parse_transcription_form({"response_format": [response_format]}, "json")
        options = job_options(settings, form)
        assert options.word_timestamps
        keys.add(job_key(AUDIO, transcriber, settings, options))
    assert len(keys) == 1


class _OnOtherEngine(ScriptedTranscriber):
    @property
    def engine(self) -> str:
        return "onnx"


def test_what_changes_a_transcript_changes_the_key(settings: Settings) -> None:
    transcriber = ScriptedTranscriber()
    base = job_options(settings, parse_transcription_form({}, "json"))
    key = job_key(AUDIO, transcriber, settings, base)
    changed = [
        job_key("1" * 64, transcriber, settings, base),
        job_key(AUDIO, transcriber, settings, replace(base, vad=VadOptions(threshold=0.3))),
        job_key(
            AUDIO,
            transcriber,
            settings,
            replace(base, chunking=ChunkingOptions(min_duration_s=10.0)),
        ),
        job_key(AUDIO, transcriber, settings, replace(base, max_audio_s=60.0)),
        job_key(AUDIO, transcriber, settings.model_copy(update={"quantize_int8": True}), base),
        job_key(AUDIO, transcriber, settings.model_copy(update={"model": "v3_rnnt"}), base),
        job_key(AUDIO, _OnOtherEngine(), settings, base),
    ]
    assert key not in changed
    assert len(set(changed)) == len(changed)
    # batch size changes the speed only (batched equals one by one)
    assert job_key(AUDIO, transcriber, settings, replace(base, batch_size=16)) == key


def test_a_chunking_strategy_field_reaches_the_key(settings: Settings) -> None:
    transcriber = ScriptedTranscriber()
    plain = job_options(settings, parse_transcription_form({}, "json"))
    tuned = job_options(
        settings,
        parse_transcription_form(
            {"chunking_strategy": ['{"type":"server_vad","threshold":0.7}']}, "json"
        ),
    )
    assert tuned.vad.threshold == 0.7
    assert job_key(AUDIO, transcriber, settings, plain) != job_key(
        AUDIO, transcriber, settings, tuned
    )
