"""Segments and a duration in, OpenAI response bodies out: json, text, verbose_json, srt, vtt.

Pure (no I/O, no HTTP, no model); shared by the server and the CLI. Long pipeline segments are
re-cut from their word timestamps into readable units (cues) before anything is written.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from gigaam_api.types import Segment, Word

ResponseFormat = Literal["json", "text", "verbose_json", "srt", "vtt"]
"""The one list of response formats; everything else (CLI choices, settings, the OpenAPI enum,
FORMATS below) is derived from it."""
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = get_args(ResponseFormat)
Granularity = Literal["word", "segment"]

LANGUAGE = "russian"
"""verbose_json names the language in full, as OpenAI does (GigaAM is Russian-only)."""


@dataclass(frozen=True)
class FormatInfo:
    """How one response format travels: its media type, its file extension, and whether it
    shows times (a timed body needs word timestamps; an untimed one can stream as text deltas)."""

    media_type: str
    extension: str
    timed: bool


FORMATS: dict[ResponseFormat, FormatInfo] = {
    "json": FormatInfo("application/json", "json", timed=False),
    "text": FormatInfo("text/plain; charset=utf-8", "txt", timed=False),
    "verbose_json": FormatInfo("application/json", "json", timed=True),
    "srt": FormatInfo("application/x-subrip; charset=utf-8", "srt", timed=True),
    "vtt": FormatInfo("text/vtt; charset=utf-8", "vtt", timed=True),
}

_SENTENCE_END = (".", "!", "?", "…")
_CLAUSE_END = (",", ";", ":", "—", "-")


@dataclass(frozen=True)
class UnitLimits:
    """How long a readable unit (segment or subtitle cue) may get.

    Netflix-style subtitle limits: two lines of 42 characters, about 7 s on screen; a silence of
    pause_s or more between words always starts a new unit.
    """

    line_chars: int = 42
    max_lines: int = 2
    max_duration_s: float = 7.0
    pause_s: float = 0.6


DEFAULT_LIMITS = UnitLimits()


@dataclass(frozen=True)
class Unit:
    """A readable stretch of one pipeline segment, in absolute seconds.

    source_start_s is where the pipeline segment it came from starts (it becomes `seek`); tokens
    are its words' token ids (empty when the words were timed by interpolation).
    """

    start: float
    end: float
    text: str
    avg_logprob: float
    source_start_s: float
    tokens: tuple[int, ...] = ()


def _timed_words(segment: Segment) -> list[Word]:
    """The segment's words when they spell its text; otherwise words timed by character share.

    Interpolated times keep a segment without word timestamps splittable, so a 20 s chunk
    never lands on screen as one cue; the text itself always comes from the segment.
    """
    texts = segment.text.split()
    if segment.words and [word.text for word in segment.words] == texts:
        return list(segment.words)
    if not texts:
        return []
    total_chars = sum(len(text) + 1 for text in texts)
    span_s = max(segment.end - segment.start, 0.0)
    words: list[Word] = []
    offset = 0
    for text in texts:
        start = segment.start + span_s * offset / total_chars
        offset += len(text) + 1
        words.append(Word(text, start, segment.start + span_s * (offset - 1) / total_chars))
    return words


def wrap_lines(text: str, line_chars: int, max_lines: int) -> list[str] | None:
    """Split text at spaces into at most max_lines balanced lines of line_chars, or None.

    A single word longer than a line is allowed its own line (nothing better can be done).
    """
    words = text.split()
    if not words:
        return []
    if len(text) <= line_chars or len(words) == 1:
        return [" ".join(words)]
    if max_lines < 2:
        return None
    best: list[str] | None = None
    best_width = math.inf
    for cut in range(1, len(words)):
        first = " ".join(words[:cut])
        rest = " ".join(words[cut:])
        tail = [rest] if len(rest) <= line_chars else wrap_lines(rest, line_chars, max_lines - 1)
        if tail is None or (len(first) > line_chars and cut > 1):
            continue
        width = max(len(first), *(len(line) for line in tail))
        if width < best_width:
            best, best_width = [first, *tail], width
    return best


def _fits(words: Sequence[Word], limits: UnitLimits) -> bool:
    if len(words) > 1 and words[-1].end - words[0].start > limits.max_duration_s:
        return False
    text = " ".join(word.text for word in words)
    return wrap_lines(text, limits.line_chars, limits.max_lines) is not None


def _break_score(words: Sequence[Word], index: int, limits: UnitLimits) -> float:
    """How good a cut before words[index] is: a pause, then punctuation, then a full first part."""
    before = words[index - 1]
    score = 2.0 * max(words[index].start - before.end, 0.0)
    if before.text.endswith(_SENTENCE_END):
        score += 1.0
    elif before.text.endswith(_CLAUSE_END):
        score += 0.5
    prefix_chars = sum(len(word.text) + 1 for word in words[:index])
    return score + prefix_chars / (limits.line_chars * limits.max_lines)


def _cut(words: list[Word], limits: UnitLimits) -> list[list[Word]]:
    """Greedy units: a hard break at pauses and sentence ends, the best soft break on overflow."""
    units: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        if current:
            gap_s = word.start - current[-1].end
            if gap_s >= limits.pause_s or current[-1].text.endswith(_SENTENCE_END):
                units.append(current)
                current = []
        current.append(word)
        while len(current) > 1 and not _fits(current, limits):
            # Cut the overflowing unit at its best point; the tail keeps growing.
            fitting = [i for i in range(1, len(current)) if _fits(current[:i], limits)] or [1]
            # A cue of a word or two reads badly: cut after a third of the room when possible.
            room = limits.line_chars * limits.max_lines / 3
            full = [i for i in fitting if len(" ".join(w.text for w in current[:i])) >= room]
            index = max(full or fitting, key=lambda i: _break_score(current, i, limits))
            units.append(current[:index])
            current = current[index:]
    if current:
        units.append(current)
    return units


def plan_units(segment: Segment, limits: UnitLimits = DEFAULT_LIMITS) -> list[Unit]:
    """Cut one pipeline segment into readable units, in time order; empty text gives []."""
    words = _timed_words(segment)
    units: list[Unit] = []
    for group in _cut(words, limits):
        start = max(group[0].start, segment.start)
        end = max(group[-1].end, start)
        text = " ".join(word.text for word in group)
        tokens = tuple(token for word in group for token in word.tokens)
        units.append(Unit(start, end, text, segment.avg_logprob, segment.start, tokens))
    return units


def segment_text(segment: Segment) -> str:
    """The segment's text as it appears in the full text (whitespace normalised)."""
    return " ".join(segment.text.split())


def join_texts(texts: Iterable[str]) -> str:
    """Full text: the non-empty pieces joined by one space."""
    return " ".join(text for text in texts if text)


def full_text(segments: Iterable[Segment]) -> str:
    """The transcript as one string; equals the concatenated stream deltas."""
    return join_texts(segment_text(segment) for segment in segments)


def usage_seconds(duration_s: float) -> int:
    """Billed seconds as OpenAI reports them: the duration rounded up (8.47 s -> 9)."""
    return math.ceil(round(max(duration_s, 0.0), 3))


def usage(duration_s: float) -> dict[str, Any]:
    return {"type": "duration", "seconds": usage_seconds(duration_s)}


def compression_ratio(text: str) -> float:
    """Whisper's repetition signal: UTF-8 bytes over zlib-compressed bytes (0.0 for '')."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def _seconds(value: float) -> float:
    return round(max(value, 0.0), 3)


def to_json(segments: Sequence[Segment], duration_s: float) -> dict[str, Any]:
    """The `json` body: text and usage."""
    return {"text": full_text(segments), "usage": usage(duration_s)}


def to_text(segments: Sequence[Segment]) -> str:
    """The `text` body: the transcript and a newline (nothing at all for silence)."""
    text = full_text(segments)
    return f"{text}\n" if text else ""


def _units(segments: Iterable[Segment], limits: UnitLimits) -> list[Unit]:
    return [unit for segment in segments for unit in plan_units(segment, limits)]


def to_verbose_json(
    segments: Sequence[Segment],
    duration_s: float,
    granularities: Iterable[Granularity] = (),
    limits: UnitLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """The `verbose_json` body with OpenAI's granularity rules.

    No granularity or `segment` gives `segments`; `word` gives `words`; `word` alone leaves the
    `segments` key out (Buzz relies on that). Every segment carries all ten OpenAI fields.
    """
    wanted = set(granularities) or {"segment"}
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": LANGUAGE,
        "duration": _seconds(duration_s),
        "text": full_text(segments),
    }
    if "segment" in wanted:
        body["segments"] = [
            {
                "id": index,
                "seek": round(unit.source_start_s * 100),  # 10 ms frames, as Whisper counts
                "start": _seconds(unit.start),
                "end": _seconds(unit.end),
                "text": f" {unit.text}",
                "tokens": list(unit.tokens),
                "temperature": 0.0,
                "avg_logprob": float(unit.avg_logprob),
                "compression_ratio": compression_ratio(unit.text),
                "no_speech_prob": 0.0,
            }
            for index, unit in enumerate(_units(segments, limits))
        ]
    if "word" in wanted:
        body["words"] = [
            {"word": word.text, "start": _seconds(word.start), "end": _seconds(word.end)}
            for segment in segments
            for word in segment.words
        ]
    body["usage"] = usage(duration_s)
    return body


def _timestamp(seconds: float, separator: str) -> str:
    total_ms = round(max(seconds, 0.0) * 1000)
    hours, rest_ms = divmod(total_ms, 3_600_000)
    minutes, rest_ms = divmod(rest_ms, 60_000)
    secs, millis = divmod(rest_ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_lines(unit: Unit, limits: UnitLimits) -> str:
    lines = wrap_lines(unit.text, limits.line_chars, limits.max_lines) or [unit.text]
    return "\n".join(lines)


def to_srt(segments: Sequence[Segment], limits: UnitLimits = DEFAULT_LIMITS) -> str:
    """SubRip cues, numbered from 1, times as HH:MM:SS,mmm; '' for silence."""
    return "".join(
        f"{number}\n{_timestamp(unit.start, ',')} --> {_timestamp(unit.end, ',')}\n"
        f"{_cue_lines(unit, limits)}\n\n"
        for number, unit in enumerate(_units(segments, limits), start=1)
    )


def to_vtt(segments: Sequence[Segment], limits: UnitLimits = DEFAULT_LIMITS) -> str:
    """WebVTT: the header, then cues with times as HH:MM:SS.mmm."""
    cues = "".join(
        f"{_timestamp(unit.start, '.')} --> {_timestamp(unit.end, '.')}\n"
        f"{_cue_lines(unit, limits)}\n\n"
        for unit in _units(segments, limits)
    )
    return f"WEBVTT\n\n{cues}"


def render(
    response_format: ResponseFormat,
    segments: Sequence[Segment],
    duration_s: float,
    granularities: Iterable[Granularity] = (),
) -> dict[str, Any] | str:
    """The body of one response format: a JSON object for json/verbose_json, else text."""
    if response_format == "json":
        return to_json(segments, duration_s)
    if response_format == "verbose_json":
        return to_verbose_json(segments, duration_s, granularities)
    if response_format == "text":
        return to_text(segments)
    if response_format == "srt":
        return to_srt(segments)
    return to_vtt(segments)
