"""The project's shared vocabulary: results, per-call options and the transcriber contract.

Standard library only, so every layer (model, pipeline, server) can import it; times are float
seconds, rounded only when a format writes them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

SAMPLE_RATE = 16_000
"""Every waveform inside the project is mono float32 at this rate."""


@dataclass(frozen=True)
class SampleSpan:
    """Samples [start_sample, end_sample) of a SAMPLE_RATE stream, counted from its start."""

    start_sample: int
    end_sample: int

    @property
    def num_samples(self) -> int:
        return self.end_sample - self.start_sample

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end_sample / SAMPLE_RATE


@dataclass(frozen=True)
class Word:
    """A word with its time span in seconds (chunk-local or absolute, as the holder says).

    tokens: the ids the model emitted for it, in its own vocabulary, word separators before it
    included (a character model's spaces; a SentencePiece `▁` is part of the first piece), so a
    run of words' tokens is exactly what the model emitted for that stretch. Empty when the
    engine computed no word timestamps.
    """

    text: str
    start: float
    end: float
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChunkResult:
    """What an engine returns for one waveform; word times are relative to the waveform's start.

    avg_logprob is the mean log-probability of the emitted tokens (0.0 when nothing was emitted).
    """

    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0


@dataclass(frozen=True)
class Segment:
    """One transcribed stretch of audio in absolute time (a whole clip or one VAD chunk)."""

    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    avg_logprob: float = 0.0


@dataclass(frozen=True)
class VadOptions:
    """Silero VAD knobs (the library's own names, units in the names)."""

    threshold: float = 0.5
    min_silence_duration_ms: int = 100
    speech_pad_ms: int = 30
    min_speech_duration_ms: int = 250


@dataclass(frozen=True)
class ChunkingOptions:
    """How speech regions are merged into model-sized chunks (upstream GigaAM's algorithm)."""

    min_duration_s: float = 15.0
    max_duration_s: float = 22.0
    strict_limit_s: float = 30.0
    new_chunk_threshold_s: float = 0.2


@dataclass(frozen=True)
class TranscribeOptions:
    """Per-call options of a transcription.

    max_audio_s: 0 means no limit. short_form_max_s: audio up to this length is not chunked: VAD
    still runs (audio without speech gives no segment, see D-013), then the whole clip goes
    through the model in one pass, as upstream's short path does.
    """

    vad: VadOptions = field(default_factory=VadOptions)
    chunking: ChunkingOptions = field(default_factory=ChunkingOptions)
    word_timestamps: bool = True
    batch_size: int = 4
    max_audio_s: float = 0.0
    short_form_max_s: float = 25.0


@dataclass(frozen=True)
class DownloadProgress:
    """Progress of one weights file download (total_bytes is None when the server won't say)."""

    file_name: str
    done_bytes: int
    total_bytes: int | None


class Transcription(Protocol):
    """A transcription in progress: iterate it for Segments in time order.

    Iterating does the work (decode, VAD, chunk, infer); close() stops it early and frees the
    ffmpeg process and every buffer. close() may also come from another thread while one
    iterates (a cancel): the run then stops at its next check and frees what is left.
    duration_s is the probed duration until iteration ends, then the decoded one;
    processed_s / duration_s is the progress.
    """

    def __iter__(self) -> Iterator[Segment]: ...

    @property
    def duration_s(self) -> float: ...

    @property
    def processed_s(self) -> float:
        """Audio seconds from the start that are settled: every Segment before this time has
        been yielded. Grows through silence too; equals duration_s once iteration has ended.
        Safe to read from another thread (progress reports)."""
        ...

    def close(self) -> None: ...


class Transcriber(Protocol):
    """Turns an audio file into a Transcription; the only thing the HTTP layer knows of ASR."""

    @property
    def model_id(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def engine(self) -> str:
        """The inference runtime ('torch', 'onnx'), for /metrics."""
        ...

    @property
    def precision(self) -> str:
        """The encoder's arithmetic ('fp32', 'int8'), for /metrics."""
        ...

    def transcribe(
        self, path: Path, options: TranscribeOptions, cancel: threading.Event
    ) -> Transcription:
        """Probe the file and validate it (raising AudioError at once), then return the lazy run.

        Setting `cancel` stops the run within one batch.
        """
        ...
