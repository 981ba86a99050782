"""OpenAI's transcription form fields, parsed leniently the way real clients send them.

Array fields come as `x` or `x[]` (openai-python and the Vercel SDK use brackets), objects as a
JSON string or as `x[key]` bracket fields; `language` in any common spelling; `prompt` and
`temperature` accepted and ignored. Knows form values only: no request, no model, no audio.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from gigaam_api.formats import RESPONSE_FORMATS, Granularity, ResponseFormat
from gigaam_api.server.errors import InvalidFieldError, ModelNotAcceptedError
from gigaam_api.types import VadOptions

FormFields = Mapping[str, Sequence[str]]
"""Every non-file form field by name, each with its values in the order sent."""

FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "Audio or video file."},
        "model": {"type": "string", "description": "Loaded model, ALLOWED_MODELS or an alias."},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS)},
        "timestamp_granularities[]": {
            "type": "array",
            "items": {"type": "string", "enum": ["word", "segment"]},
        },
        "language": {"type": "string", "description": "Accepted and ignored (Russian only)."},
        "prompt": {"type": "string", "description": "Accepted and ignored."},
        "temperature": {"type": "number", "description": "Accepted and ignored."},
        "stream": {"type": "boolean", "description": "SSE for json and text."},
        "chunking_strategy": {
            "type": "string",
            "description": '"auto" or {"type":"server_vad","threshold":0.5,...} as JSON',
        },
        "include[]": {"type": "array", "items": {"type": "string", "enum": ["logprobs"]}},
    },
}
"""The OpenAI transcription form, for OpenAPI (the body is parsed by uploads.py, not FastAPI)."""
FORM_OPENAPI: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": FORM_SCHEMA}}}
}

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}
_GRANULARITIES: tuple[Granularity, ...] = ("word", "segment")
_INCLUDE_VALUES = ("logprobs",)
_RUSSIAN_SPELLINGS = {"ru", "rus", "russian", "русский", "ru-ru", "ru_ru"}
_VAD_KEYS = ("type", "threshold", "silence_duration_ms", "prefix_padding_ms")
_MAX_VAD_MS = 60_000


@dataclass(frozen=True)
class VadOverrides:
    """`chunking_strategy: server_vad` values; None keeps the server's setting."""

    threshold: float | None = None
    silence_duration_ms: int | None = None
    prefix_padding_ms: int | None = None

    def apply(self, base: VadOptions) -> VadOptions:
        """The server's VAD options with these values mapped onto Silero's knobs."""
        options = base
        if self.threshold is not None:
            options = replace(options, threshold=self.threshold)
        if self.silence_duration_ms is not None:
            options = replace(options, min_silence_duration_ms=self.silence_duration_ms)
        if self.prefix_padding_ms is not None:
            options = replace(options, speech_pad_ms=self.prefix_padding_ms)
        return options


@dataclass(frozen=True)
class TranscriptionForm:
    """The fields of one transcription request, validated and normalised."""

    model: str | None
    response_format: ResponseFormat
    granularities: tuple[Granularity, ...]
    language: str | None
    """ISO code when recognised ('ru'), else the value as sent in lower case; None when unset."""
    stream: bool
    vad: VadOverrides | None
    include: tuple[str, ...]


def _values(fields: FormFields, name: str) -> list[str]:
    """All values of an array field, sent as `name`, `name[]` or comma-separated."""
    raw = [*fields.get(name, ()), *fields.get(f"{name}[]", ())]
    return [item.strip() for value in raw for item in value.split(",") if item.strip()]


def _single(fields: FormFields, name: str) -> str | None:
    values = fields.get(name)
    if not values:
        return None
    return values[-1].strip()


def parse_bool(name: str, value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidFieldError(name, f"'{name}' must be true or false, got '{value}'.")


def normalize_language(value: str | None) -> str | None:
    """'ru', 'ru-RU', 'Russian', 'русский' -> 'ru'; '' or 'auto' -> None; other codes kept."""
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("", "auto", "null", "none"):
        return None
    if lowered in _RUSSIAN_SPELLINGS:
        return "ru"
    return lowered


def _response_format(value: str | None, default: ResponseFormat) -> ResponseFormat:
    if value is None or value == "":
        return default
    lowered = value.lower()
    if lowered not in RESPONSE_FORMATS:
        raise InvalidFieldError(
            "response_format",
            f"'{value}' is not a supported response_format; use one of "
            f"{', '.join(RESPONSE_FORMATS)}.",
        )
    return lowered


def _granularities(fields: FormFields) -> tuple[Granularity, ...]:
    chosen: list[Granularity] = []
    for value in _values(fields, "timestamp_granularities"):
        lowered = value.lower()
        if lowered not in _GRANULARITIES:
            raise InvalidFieldError(
                "timestamp_granularities",
                f"'{value}' is not a timestamp granularity; use 'word' and/or 'segment'.",
            )
        if lowered not in chosen:
            chosen.append(lowered)
    return tuple(chosen)


def _include(fields: FormFields) -> tuple[str, ...]:
    values = _values(fields, "include")
    for value in values:
        if value not in _INCLUDE_VALUES:
            raise InvalidFieldError("include", f"'{value}' is not a supported include value.")
    return tuple(values)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidFieldError(name, f"'{name}' must be a number.")
    try:
        number = float(value)
    except ValueError:
        raise InvalidFieldError(name, f"'{name}' must be a number, got '{value}'.") from None
    if not math.isfinite(number):
        raise InvalidFieldError(name, f"'{name}' must be a finite number.")
    return number


def _milliseconds(name: str, value: object) -> int:
    number = _number(name, value)
    if not 0 <= number <= _MAX_VAD_MS or number != int(number):
        raise InvalidFieldError(name, f"'{name}' must be a whole number from 0 to {_MAX_VAD_MS}.")
    return int(number)


def _chunking_object(fields: FormFields) -> dict[str, object] | None:
    """chunking_strategy as a dict, from a JSON string or `chunking_strategy[key]` fields."""
    bracketed = {
        name[len("chunking_strategy[") : -1]: values[-1]
        for name, values in fields.items()
        if name.startswith("chunking_strategy[") and name.endswith("]") and values
    }
    raw = _single(fields, "chunking_strategy")
    if bracketed:
        return dict(bracketed)
    if raw is None or raw.lower() in ("", "null", "none"):
        return None
    if raw.lower() == "auto":
        return {"type": "auto"}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        raise InvalidFieldError(
            "chunking_strategy",
            "chunking_strategy must be 'auto' or a server_vad object "
            '(e.g. {"type": "server_vad", "threshold": 0.5}).',
        ) from None
    if parsed == "auto":
        return {"type": "auto"}
    if not isinstance(parsed, dict):
        raise InvalidFieldError(
            "chunking_strategy", "chunking_strategy must be 'auto' or an object."
        )
    return cast(dict[str, object], parsed)


def _vad(fields: FormFields) -> VadOverrides | None:
    strategy = _chunking_object(fields)
    if strategy is None or strategy.get("type") == "auto":
        return None
    if strategy.get("type") != "server_vad":
        raise InvalidFieldError(
            "chunking_strategy", "chunking_strategy type must be 'auto' or 'server_vad'."
        )
    unknown = sorted(set(strategy) - set(_VAD_KEYS))
    if unknown:
        raise InvalidFieldError(
            "chunking_strategy", f"Unknown chunking_strategy field(s): {', '.join(unknown)}."
        )
    threshold = None
    if strategy.get("threshold") is not None:
        threshold = _number("chunking_strategy.threshold", strategy["threshold"])
        if not 0.0 < threshold < 1.0:
            raise InvalidFieldError(
                "chunking_strategy.threshold", "threshold must be between 0 and 1 (exclusive)."
            )
    silence = strategy.get("silence_duration_ms")
    padding = strategy.get("prefix_padding_ms")
    return VadOverrides(
        threshold=threshold,
        silence_duration_ms=None
        if silence is None
        else _milliseconds("chunking_strategy.silence_duration_ms", silence),
        prefix_padding_ms=None
        if padding is None
        else _milliseconds("chunking_strategy.prefix_padding_ms", padding),
    )


def parse_transcription_form(
    fields: FormFields, default_format: ResponseFormat
) -> TranscriptionForm:
    """Validate the non-file fields of POST /v1/audio/transcriptions.

    Raises:
        InvalidFieldError: a field has a value OpenAI's API would also refuse.
    """
    temperature = _single(fields, "temperature")
    if temperature:  # accepted and ignored, but it must still be a number
        _number("temperature", temperature)
    model = _single(fields, "model")
    return TranscriptionForm(
        model=model or None,
        response_format=_response_format(_single(fields, "response_format"), default_format),
        granularities=_granularities(fields),
        language=normalize_language(_single(fields, "language")),
        stream=parse_bool("stream", _single(fields, "stream")),
        vad=_vad(fields),
        include=_include(fields),
    )


@dataclass(frozen=True)
class ResultQuery:
    """How a job's result is asked for: `?response_format=…&timestamp_granularities[]=…`."""

    response_format: ResponseFormat
    granularities: tuple[Granularity, ...]


def parse_result_query(fields: FormFields, default_format: ResponseFormat) -> ResultQuery:
    """Validate the query of GET …/jobs/{id}/result (the same leniency as the form).

    Raises:
        InvalidFieldError: an unknown format or granularity.
    """
    return ResultQuery(
        _response_format(_single(fields, "response_format"), default_format),
        _granularities(fields),
    )


def check_model(
    requested: str | None, loaded: str, allowed: Iterable[str], aliases: Iterable[str]
) -> None:
    """Accept the loaded model's id, ALLOWED_MODELS and MODEL_ALIASES; unset means loaded.

    Raises:
        ModelNotAcceptedError: any other name.
    """
    accepted = [loaded, *(name for name in (*allowed, *aliases) if name != loaded)]
    if requested is not None and requested not in accepted:
        raise ModelNotAcceptedError(requested, accepted)
