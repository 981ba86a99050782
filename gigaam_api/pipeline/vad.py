"""Streaming Silero VAD on ONNX Runtime: feed samples as they are decoded, get each speech region
once it is final.

The regions equal silero's get_speech_timestamps on the whole audio (same 512-sample windows,
thresholds, min speech/silence and padding; no maximum speech length). The model is the
"sequence" export bundled in the silero-vad package: one ONNX call scores a run of windows with
the recurrent state carried inside the graph, and gives exactly the per-window model's
probabilities (see D-060). No torch here (the package itself is never imported, only its data
file), one intra-op thread; knows nothing of chunking or the ASR model.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from gigaam_api.errors import ModelError
from gigaam_api.types import SAMPLE_RATE, SampleSpan, VadOptions

logger = logging.getLogger(__name__)

WINDOW_SAMPLES = 512
"""Silero scores 16 kHz audio in windows of this many samples."""
CONTEXT_SAMPLES = 64
"""Each window is scored with the previous window's last samples prepended (zeros at first)."""
MODEL_FILE = "silero_vad_16k_sequence.onnx"
"""Inputs: input [windows, 576], h and c [1, 1, 128]; outputs: speech_probs [windows], hn, cn."""
_STATE_SHAPE = (1, 1, 128)
_MAX_WINDOWS_PER_CALL = 512  # 16 s of audio; longer calls are no faster (bench/bench_vad.py)
_NEG_THRESHOLD_GAP = 0.15
_NEG_THRESHOLD_FLOOR = 0.01


@dataclass(frozen=True)
class SpeechRegion(SampleSpan):
    """A stretch of speech in samples from the start of the audio (end exclusive)."""


def _ms_to_samples(ms: int) -> int:
    return SAMPLE_RATE * ms // 1000


def bundled_model_path() -> Path:
    """The sequence model file inside the installed silero-vad package.

    Found through the import system without importing the package: its __init__ imports torch
    and sets torch's thread count.

    Raises:
        ModelError: silero-vad is not installed, or too old to ship the file (< 6.2.2).
    """
    spec = importlib.util.find_spec("silero_vad")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise ModelError(
        f"Silero VAD model {MODEL_FILE} not found: install silero-vad>=6.2.3 "
        "(pip install 'silero-vad>=6.2.3')."
    )


def _session_options() -> ort.SessionOptions:
    """One thread, nothing spinning: a window is far too small to share between cores, and the
    VAD runs beside the ASR engine, which owns the other cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class SileroVad:
    """The loaded Silero model; hands out independent streams (one per transcription).

    Build it with `SileroVad.load()`. The ONNX session is shared and thread-safe; each stream
    from `stream(options)` carries its own recurrent state and context.
    """

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session

    @classmethod
    def load(cls, path: Path | None = None) -> SileroVad:
        """Load the sequence model bundled in silero-vad (offline), or the file at `path`.

        Raises:
            ModelError: the model file is missing or ONNX Runtime cannot load it.
        """
        model_path = path or bundled_model_path()
        try:
            session = ort.InferenceSession(
                str(model_path), _session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types, one per failure
            raise ModelError(f"Cannot load the Silero VAD model {model_path}: {exc}") from exc
        logger.debug("Silero VAD loaded from %s", model_path)
        return cls(session)

    def stream(self, options: VadOptions) -> VadStream:
        """A fresh stream with its own model state."""
        return VadStream(self._session, options)


class VadStream:
    """Scores windows as samples arrive and emits each speech region once it can no longer change.

    A region's end depends on the silence before the next region (padding is shared when the gap
    is under two pads), so the last closed region is held until the next one starts or the audio
    has moved two pads past it. Not thread-safe: one stream is fed from one thread at a time.
    """

    def __init__(self, session: ort.InferenceSession, options: VadOptions) -> None:
        self._session = session
        self._hidden = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._cell = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(CONTEXT_SAMPLES, dtype=np.float32)
        self._threshold = options.threshold
        self._neg_threshold = max(options.threshold - _NEG_THRESHOLD_GAP, _NEG_THRESHOLD_FLOOR)
        self._min_speech_samples = _ms_to_samples(options.min_speech_duration_ms)
        self._min_silence_samples = _ms_to_samples(options.min_silence_duration_ms)
        self._pad_samples = _ms_to_samples(options.speech_pad_ms)
        self._partial = np.empty(0, dtype=np.float32)
        self._samples_fed = 0
        self._windows_scored = 0
        self._triggered = False
        self._speech_start = 0
        self._silence_start = 0  # silero's temp_end: 0 means "not in a trailing silence"
        self._held: tuple[int, int] | None = None  # (padded start, unpadded end)
        self._finished = False

    @property
    def pending_from_sample(self) -> int:
        """No region emitted later starts (or ends) before this sample."""
        if self._held is not None:
            return self._held[0]
        if self._triggered:
            return max(0, self._speech_start - self._pad_samples)
        return max(0, self._windows_scored * WINDOW_SAMPLES - self._pad_samples)

    def feed(self, samples: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> list[SpeechRegion]:
        """Score the new samples; return the regions that became final."""
        if self._finished:
            raise RuntimeError("VadStream.feed() after finish()")
        if samples.dtype == np.int16:
            audio = samples.astype(np.float32) / np.float32(32768.0)
        else:
            audio = samples.astype(np.float32, copy=False)
        self._samples_fed += len(audio)
        buffer = np.concatenate([self._partial, audio]) if len(self._partial) else audio
        full = len(buffer) // WINDOW_SAMPLES * WINDOW_SAMPLES
        out: list[SpeechRegion] = []
        step = _MAX_WINDOWS_PER_CALL * WINDOW_SAMPLES
        for offset in range(0, full, step):
            windows = buffer[offset : min(full, offset + step)].reshape(-1, WINDOW_SAMPLES)
            for probability in self._score(windows):
                out += self._step(float(probability))
        self._partial = buffer[full:].copy()
        out += self._release_held()
        return out

    def finish(self) -> list[SpeechRegion]:
        """Score the zero-padded last window and return every region still pending."""
        if self._finished:
            return []
        self._finished = True
        out: list[SpeechRegion] = []
        if len(self._partial):
            window = np.zeros((1, WINDOW_SAMPLES), dtype=np.float32)
            window[0, : len(self._partial)] = self._partial
            out += self._step(float(self._score(window)[0]))
        self._partial = np.empty(0, dtype=np.float32)
        total = self._samples_fed
        if self._triggered and total - self._speech_start > self._min_speech_samples:
            out += self._close_region(self._speech_start, total)
        self._triggered = False
        if self._held is not None:
            start, end = self._held
            out.append(SpeechRegion(start, min(total, end + self._pad_samples)))
            self._held = None
        return out

    def _score(self, windows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Speech probabilities of consecutive windows [n, 512], carrying the state across calls."""
        inputs = np.empty((len(windows), CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
        inputs[:, CONTEXT_SAMPLES:] = windows
        inputs[0, :CONTEXT_SAMPLES] = self._context
        inputs[1:, :CONTEXT_SAMPLES] = windows[:-1, -CONTEXT_SAMPLES:]
        probabilities, self._hidden, self._cell = self._session.run(
            None, {"input": inputs, "h": self._hidden, "c": self._cell}
        )
        self._context = windows[-1, -CONTEXT_SAMPLES:].copy()
        return np.asarray(probabilities, dtype=np.float32).reshape(-1)

    def _step(self, probability: float) -> list[SpeechRegion]:
        """Silero's state machine for one window (get_speech_timestamps without a max length)."""
        window_start = self._windows_scored * WINDOW_SAMPLES
        self._windows_scored += 1
        is_speech = probability >= self._threshold
        if is_speech and self._silence_start:
            self._silence_start = 0
        if is_speech and not self._triggered:
            self._triggered = True
            self._speech_start = window_start
            return []
        if probability < self._neg_threshold and self._triggered:
            if not self._silence_start:
                self._silence_start = window_start
            if window_start - self._silence_start < self._min_silence_samples:
                return []
            end = self._silence_start
            self._triggered = False
            self._silence_start = 0
            if end - self._speech_start > self._min_speech_samples:
                return self._close_region(self._speech_start, end)
        return []

    def _close_region(self, start: int, end: int) -> list[SpeechRegion]:
        """A new unpadded region: settle the held one's padding against it, then hold it."""
        pad = self._pad_samples
        if self._held is None:
            self._held = (max(0, start - pad), end)
            return []
        held_start, held_end = self._held
        gap = start - held_end
        if gap < 2 * pad:
            emitted = SpeechRegion(held_start, held_end + gap // 2)
            self._held = (max(0, start - gap // 2), end)
        else:
            emitted = SpeechRegion(held_start, held_end + pad)
            self._held = (max(0, start - pad), end)
        return [emitted]

    def _release_held(self) -> list[SpeechRegion]:
        """Emit the held region once no next region can start within two pads of its end."""
        if self._held is None:
            return []
        next_start_bound = (
            self._speech_start if self._triggered else self._windows_scored * WINDOW_SAMPLES
        )
        held_start, held_end = self._held
        if next_start_bound - held_end < 2 * self._pad_samples:
            return []
        self._held = None
        return [SpeechRegion(held_start, held_end + self._pad_samples)]
