"""Form parsing: OpenAI field names, bracket arrays and objects, lenient language, errors."""

from __future__ import annotations

import pytest

from gigaam_api.server.errors import InvalidFieldError, ModelNotAcceptedError, describe
from gigaam_api.server.forms import (
    VadOverrides,
    check_model,
    normalize_language,
    parse_transcription_form,
)
from gigaam_api.types import VadOptions


def test_defaults_when_only_a_file_was_sent() -> None:
    form = parse_transcription_form({}, "json")
    assert form.model is None
    assert form.response_format == "json"
    assert form.granularities == ()
    assert form.language is None
    assert form.stream is False
    assert form.vad is None
    assert form.include == ()


def test_default_format_comes_from_the_setting() -> None:
    assert parse_transcription_form({}, "verbose_json").response_format == "verbose_json"
    assert parse_transcription_form({"response_format": [""]}, "srt").response_format == "srt"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp_granularities[]": ["word"]}, ("word",)),
        ({"timestamp_granularities": ["word"]}, ("word",)),
        ({"timestamp_granularities[]": ["word", "segment"]}, ("word", "segment")),
        ({"timestamp_granularities": ["segment,word"]}, ("segment", "word")),
        ({"timestamp_granularities[]": ["Word", "word"]}, ("word",)),
    ],
)
def test_granularities_with_and_without_brackets(
    fields: dict[str, list[str]], expected: tuple[str, ...]
) -> None:
    assert parse_transcription_form(fields, "json").granularities == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("auto", None),
        ("ru", "ru"),
        ("RU", "ru"),
        ("ru-RU", "ru"),
        ("ru_RU", "ru"),
        ("russian", "ru"),
        ("Russian", "ru"),
        ("русский", "ru"),
        ("en", "en"),
    ],
)
def test_language_spellings(value: str | None, expected: str | None) -> None:
    assert normalize_language(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("1", True), ("false", False), ("", False)],
)
def test_stream_booleans(value: str, expected: bool) -> None:
    assert parse_transcription_form({"stream": [value]}, "json").stream is expected


def test_prompt_and_temperature_are_accepted_and_ignored() -> None:
    form = parse_transcription_form(
        {"prompt": ["Термины: GigaAM"], "temperature": ["0.2"], "keywords[]": ["x"]}, "json"
    )
    assert form.response_format == "json"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"chunking_strategy": ["auto"]}, None),
        ({"chunking_strategy": ['"auto"']}, None),
        ({"chunking_strategy": [""]}, None),
        (
            {"chunking_strategy": ['{"type":"server_vad","threshold":0.3}']},
            VadOverrides(threshold=0.3),
        ),
        (
            {
                "chunking_strategy[type]": ["server_vad"],
                "chunking_strategy[threshold]": ["0.6"],
                "chunking_strategy[silence_duration_ms]": ["300"],
                "chunking_strategy[prefix_padding_ms]": ["100"],
            },
            VadOverrides(threshold=0.6, silence_duration_ms=300, prefix_padding_ms=100),
        ),
        ({"chunking_strategy[type]": ["auto"]}, None),
    ],
)
def test_chunking_strategy_forms(
    fields: dict[str, list[str]], expected: VadOverrides | None
) -> None:
    assert parse_transcription_form(fields, "json").vad == expected


def test_server_vad_maps_onto_silero_knobs() -> None:
    base = VadOptions(threshold=0.5, min_silence_duration_ms=100, speech_pad_ms=30)
    applied = VadOverrides(threshold=0.7, silence_duration_ms=250, prefix_padding_ms=120).apply(
        base
    )
    assert applied == VadOptions(
        threshold=0.7,
        min_silence_duration_ms=250,
        speech_pad_ms=120,
        min_speech_duration_ms=base.min_speech_duration_ms,
    )
    assert VadOverrides().apply(base) == base


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": ["xml"]}, "response_format"),
        ({"timestamp_granularities[]": ["char"]}, "timestamp_granularities"),
        ({"stream": ["perhaps"]}, "stream"),
        ({"temperature": ["hot"]}, "temperature"),
        ({"temperature": ["nan"]}, "temperature"),
        ({"include[]": ["tokens"]}, "include"),
        ({"chunking_strategy": ["{not json"]}, "chunking_strategy"),
        ({"chunking_strategy": ["[1]"]}, "chunking_strategy"),
        ({"chunking_strategy": ['{"type":"semantic"}']}, "chunking_strategy"),
        ({"chunking_strategy": ['{"type":"server_vad","x":1}']}, "chunking_strategy"),
        (
            {"chunking_strategy": ['{"type":"server_vad","threshold":1}']},
            "chunking_strategy.threshold",
        ),
        (
            {"chunking_strategy": ['{"type":"server_vad","silence_duration_ms":-5}']},
            "chunking_strategy.silence_duration_ms",
        ),
        (
            {"chunking_strategy": ['{"type":"server_vad","prefix_padding_ms":1.5}']},
            "chunking_strategy.prefix_padding_ms",
        ),
        (
            {"chunking_strategy": ['{"type":"server_vad","threshold":true}']},
            "chunking_strategy.threshold",
        ),
    ],
)
def test_invalid_values_name_their_field(fields: dict[str, list[str]], param: str) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        parse_transcription_form(fields, "json")
    assert caught.value.param == param
    assert describe(caught.value).status_code == 400


@pytest.mark.parametrize("model", [None, "v3_ctc", "v3_rnnt", "whisper-1", "gpt-4o-transcribe"])
def test_accepted_model_names(model: str | None) -> None:
    check_model(model, "v3_ctc", ["v3_ctc", "v3_rnnt"], ["whisper-1", "gpt-4o-transcribe"])


def test_loaded_model_is_accepted_even_when_not_listed() -> None:
    check_model("my_finetune", "my_finetune", ["v3_ctc"], [])


def test_unknown_model_is_refused_with_the_accepted_names() -> None:
    with pytest.raises(ModelNotAcceptedError) as caught:
        check_model("whisper-2", "v3_ctc", ["v3_ctc", "v3_rnnt"], ["whisper-1"])
    assert caught.value.param == "model"
    assert describe(caught.value).code == "model_not_found"
    assert "v3_ctc, v3_rnnt, whisper-1" in str(caught.value)
