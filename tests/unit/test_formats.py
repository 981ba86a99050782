"""The response formats: OpenAI field rules, subtitle cue planning and exact bodies."""

from __future__ import annotations

import itertools
import zlib

import pytest
from pydantic import ValidationError

from gigaam_api import formats
from gigaam_api.formats import UnitLimits, plan_units, wrap_lines
from gigaam_api.types import Segment, Word
from tests.fixtures.settings import isolated_settings


def _segment(
    words: list[tuple[str, float, float]], *, seg_id: int = 0, logprob: float = -0.5
) -> Segment:
    # Made-up token ids: one per character, a space id (0) before every word but the first.
    timed = tuple(
        Word(text, start, end, (0,) * (index > 0) + tuple(ord(char) for char in text))
        for index, (text, start, end) in enumerate(words)
    )
    return Segment(
        id=seg_id,
        start=timed[0].start if timed else 0.0,
        end=timed[-1].end if timed else 0.0,
        text=" ".join(word.text for word in timed),
        words=timed,
        avg_logprob=logprob,
    )


def _even_words(text: str, start: float, word_s: float, gap_s: float = 0.05) -> list[Word]:
    words = []
    t = start
    for token in text.split():
        words.append(Word(token, t, t + word_s))
        t += word_s + gap_s
    return words


HELLO = _segment([("привет", 0.2, 0.6), ("мир", 0.7, 1.1)])
SECOND = _segment([("как", 2.0, 2.3), ("дела", 2.35, 2.9)], seg_id=1, logprob=-0.25)


def test_json_has_text_and_usage_rounded_up() -> None:
    assert formats.to_json([HELLO, SECOND], 8.47) == {
        "text": "привет мир как дела",
        "usage": {"type": "duration", "seconds": 9},
    }


@pytest.mark.parametrize(
    ("duration_s", "seconds"),
    [(0.0, 0), (0.001, 1), (3.0, 3), (3.0000001, 3), (27.4, 28), (-1.0, 0)],
)
def test_usage_seconds_is_the_ceiling(duration_s: float, seconds: int) -> None:
    assert formats.usage_seconds(duration_s) == seconds


def test_full_text_skips_empty_segments_and_normalises_spaces() -> None:
    empty = Segment(id=1, start=1.0, end=2.0, text="")
    spaced = Segment(id=2, start=3.0, end=4.0, text="  два   слова ")
    assert formats.full_text([HELLO, empty, spaced]) == "привет мир два слова"


def test_text_format_ends_with_newline_and_silence_is_empty() -> None:
    assert formats.to_text([HELLO]) == "привет мир\n"
    assert formats.to_text([]) == ""


def test_verbose_json_default_has_segments_only_with_all_ten_fields() -> None:
    body = formats.to_verbose_json([HELLO, SECOND], 3.0)
    assert set(body) == {"task", "language", "duration", "text", "segments", "usage"}
    assert body["task"] == "transcribe"
    assert body["language"] == "russian"
    assert body["duration"] == 3.0
    assert body["usage"] == {"type": "duration", "seconds": 3}
    first, second = body["segments"]
    assert first == {
        "id": 0,
        "seek": 20,
        "start": 0.2,
        "end": 1.1,
        "text": " привет мир",
        "tokens": [*map(ord, "привет"), 0, *map(ord, "мир")],
        "temperature": 0.0,
        "avg_logprob": -0.5,
        "compression_ratio": formats.compression_ratio("привет мир"),
        "no_speech_prob": 0.0,
    }
    assert second["id"] == 1
    assert second["seek"] == 200
    assert second["avg_logprob"] == -0.25
    assert second["text"] == " как дела"


@pytest.mark.parametrize(
    ("granularities", "has_segments", "has_words"),
    [
        ((), True, False),
        (("segment",), True, False),
        (("word",), False, True),
        (("word", "segment"), True, True),
        (("segment", "word", "word"), True, True),
    ],
)
def test_verbose_json_granularity_rules(
    granularities: tuple[formats.Granularity, ...], has_segments: bool, has_words: bool
) -> None:
    body = formats.to_verbose_json([HELLO], 1.2, granularities)
    assert ("segments" in body) is has_segments
    assert ("words" in body) is has_words


def test_verbose_json_words_are_absolute_and_rounded_to_ms() -> None:
    segment = _segment([("раз", 10.12345, 10.5), ("два", 10.6, 11.00049)])
    body = formats.to_verbose_json([segment], 12.0, ["word"])
    assert body["words"] == [
        {"word": "раз", "start": 10.123, "end": 10.5},
        {"word": "два", "start": 10.6, "end": 11.0},
    ]


def test_compression_ratio_is_utf8_bytes_over_zlib_bytes() -> None:
    text = "мама мыла раму " * 10
    data = text.encode("utf-8")
    assert formats.compression_ratio(text) == len(data) / len(zlib.compress(data))
    assert formats.compression_ratio(text) > 3.0
    assert formats.compression_ratio("") == 0.0


def test_srt_exact_body() -> None:
    assert formats.to_srt([HELLO, SECOND]) == (
        "1\n00:00:00,200 --> 00:00:01,100\nпривет мир\n\n"
        "2\n00:00:02,000 --> 00:00:02,900\nкак дела\n\n"
    )


def test_vtt_exact_body() -> None:
    long_time = _segment([("час", 3723.5, 3724.25)])
    assert formats.to_vtt([long_time]) == "WEBVTT\n\n01:02:03.500 --> 01:02:04.250\nчас\n\n"


def test_empty_subtitles() -> None:
    assert formats.to_srt([]) == ""
    assert formats.to_vtt([]) == "WEBVTT\n\n"


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", []),
        ("короткая строка", ["короткая строка"]),
        (
            "это довольно длинная фраза которая не помещается в одну строку",
            ["это довольно длинная фраза которая", "не помещается в одну строку"],
        ),
        ("x" * 50, ["x" * 50]),
    ],
)
def test_wrap_lines_balances_two_lines(text: str, lines: list[str]) -> None:
    assert wrap_lines(text, 42, 2) == lines


def test_wrap_lines_refuses_what_needs_three_lines() -> None:
    assert wrap_lines("слово " * 30, 42, 2) is None


def test_long_chunk_without_pauses_is_cut_into_cues_within_limits() -> None:
    words = _even_words(" ".join(["распознавание", "речи", "работает", "быстро"] * 15), 5.0, 0.3)
    segment = Segment(0, 5.0, words[-1].end, " ".join(w.text for w in words), tuple(words))
    units = plan_units(segment)
    assert len(units) > 3
    assert " ".join(unit.text for unit in units) == segment.text
    for unit in units:
        assert unit.end - unit.start <= 7.0
        lines = wrap_lines(unit.text, 42, 2)
        assert lines is not None
        assert all(len(line) <= 42 for line in lines)
    assert [u.start for u in units] == sorted(u.start for u in units)
    assert all(u.source_start_s == 5.0 for u in units)


def test_pause_starts_a_new_unit() -> None:
    segment = _segment([("да", 0.0, 0.3), ("нет", 0.4, 0.7), ("может", 2.0, 2.4)])
    assert [u.text for u in plan_units(segment)] == ["да нет", "может"]
    assert [(u.start, u.end) for u in plan_units(segment)] == [(0.0, 0.7), (2.0, 2.4)]


def test_sentence_end_starts_a_new_unit() -> None:
    segment = _segment([("Привет.", 0.0, 0.4), ("Как", 0.45, 0.6), ("дела?", 0.65, 0.9)])
    assert [u.text for u in plan_units(segment)] == ["Привет.", "Как дела?"]


def test_overflow_prefers_a_comma_over_a_mid_phrase_cut() -> None:
    text = (
        "сегодня утром мы долго обсуждали новый проект, "
        "а потом все вместе пошли обедать в столовую на первом этаже"
    )
    segment = Segment(0, 0.0, 6.0, text, tuple(_even_words(text, 0.0, 0.2, 0.05)))
    units = plan_units(segment, UnitLimits(max_duration_s=60.0))
    assert [u.text for u in units] == [
        "сегодня утром мы долго обсуждали новый проект,",
        "а потом все вместе пошли обедать в столовую на первом этаже",
    ]


def test_segment_without_words_is_still_split_by_interpolated_times() -> None:
    text = " ".join(["слово"] * 60)
    segment = Segment(id=0, start=10.0, end=30.0, text=text)
    units = plan_units(segment)
    assert len(units) >= 3
    assert " ".join(u.text for u in units) == text
    assert units[0].start == 10.0
    assert units[-1].end == pytest.approx(30.0, abs=0.5)
    assert all(u.end - u.start <= 7.0 for u in units)


def test_words_that_do_not_spell_the_text_fall_back_to_the_text() -> None:
    segment = Segment(0, 0.0, 2.0, "привет, мир", (Word("привет", 0.0, 0.5), Word("мир", 1, 2)))
    assert [u.text for u in plan_units(segment)] == ["привет, мир"]


def test_render_dispatches_every_format() -> None:
    assert formats.render("json", [HELLO], 1.1) == formats.to_json([HELLO], 1.1)
    assert formats.render("text", [HELLO], 1.1) == "привет мир\n"
    assert formats.render("srt", [HELLO], 1.1) == formats.to_srt([HELLO])
    assert formats.render("vtt", [HELLO], 1.1) == formats.to_vtt([HELLO])
    verbose = formats.render("verbose_json", [HELLO], 1.1, ["word"])
    assert isinstance(verbose, dict)
    assert "segments" not in verbose


def test_every_format_has_its_details_and_the_derived_lists_follow() -> None:
    from gigaam_api import cli
    from gigaam_api.server.app import create_app

    names: tuple[formats.ResponseFormat, ...] = ("json", "text", "verbose_json", "srt", "vtt")
    assert names == formats.RESPONSE_FORMATS
    assert names == tuple(formats.FORMATS)
    assert {name for name, info in formats.FORMATS.items() if not info.timed} == {"json", "text"}
    assert [formats.FORMATS[name].extension for name in names] == [
        "json",
        "txt",
        "json",
        "srt",
        "vtt",
    ]
    transcribe = cli.build_parser().parse_args(["transcribe", "a.wav"])
    assert transcribe.format == "text"
    for name in names:
        assert cli.build_parser().parse_args(["transcribe", "-f", name, "a.wav"]).format == name
        assert isolated_settings(default_response_format=name).default_response_format == name
    with pytest.raises(ValidationError, match="default_response_format"):
        isolated_settings(default_response_format="xml")
    schema = create_app(isolated_settings()).openapi()
    form = schema["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]
    enum = form["multipart/form-data"]["schema"]["properties"]["response_format"]["enum"]
    assert enum == list(names)


def test_segment_tokens_are_the_token_ids_of_its_words() -> None:
    words = _even_words("раз два три четыре пять шесть семь восемь девять десять", 0.0, 0.9)
    numbered = tuple(
        Word(w.text, w.start, w.end, (0,) * (i > 0) + (i + 1,) * len(w.text))
        for i, w in enumerate(words)
    )
    segment = Segment(0, 0.0, numbered[-1].end, " ".join(w.text for w in numbered), numbered)
    segments = formats.to_verbose_json([segment], 10.0)["segments"]
    assert len(segments) > 1  # the chunk was cut into units; each keeps exactly its words' ids
    assert [token for unit in segments for token in unit["tokens"]] == [
        token for word in numbered for token in word.tokens
    ]
    for unit in segments:
        word_ids = [t for t in unit["tokens"] if t]
        assert [len(w) for w in unit["text"].split()] == [
            len(list(group)) for _, group in itertools.groupby(word_ids)
        ]


def test_interpolated_units_have_no_tokens() -> None:
    segment = Segment(0, 0.0, 2.0, "привет, мир", (Word("привет", 0.0, 0.5, (1, 2)),))
    [unit] = formats.to_verbose_json([segment], 2.0)["segments"]
    assert unit["tokens"] == []
