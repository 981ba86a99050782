"""Streaming Silero VAD: feed samples as they are decoded, get each speech region once it is final.

The regions equal silero's get_speech_timestamps on the whole audio (same 512-sample windows,
thresholds, min speech/silence and padding; no maximum speech length). The JIT model comes from
the installed silero-vad package, loaded without changing torch's thread count, and scores on one
intra-op thread (restored after each call). Knows nothing of chunking or the model.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from gigaam_api.types import SAMPLE_RATE, SampleSpan, VadOptions

logger = logging.getLogger(__name__)

WINDOW_SAMPLES = 512
"""Silero scores 16 kHz audio in windows of this many samples."""
_NEG_THRESHOLD_GAP = 0.15
_NEG_THRESHOLD_FLOOR = 0.01


@dataclass(frozen=True)
class SpeechRegion(SampleSpan):
    """A stretch of speech in samples from the start of the audio (end exclusive)."""


def _ms_to_samples(ms: int) -> int:
    return SAMPLE_RATE * ms // 1000


@contextlib.contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the caller's count (the engine's).

    A 512-sample window is too small to share: with two threads every op waits at a barrier for
    a second core, so one busy process elsewhere on the machine made scoring 60-400x slower
    (0.12 s -> 7-52 s for 20 s of audio on 2 cores); on one thread it stays at 0.12 s.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class SileroVad:
    """The loaded Silero model; hands out independent streams (one per transcription).

    Build it with `SileroVad.load()`; `stream(options)` gives a VadStream with its own copy of
    the model state, so two streams never disturb each other.
    """

    def __init__(self, model: torch.jit.ScriptModule) -> None:
        self._model = model

    @classmethod
    def load(cls) -> SileroVad:
        """Load the JIT model bundled in the silero-vad package (offline).

        Importing silero_vad sets torch's intra-op thread count to 1; the count is restored so
        the engine's NUM_THREADS stays in force.
        """
        threads = torch.get_num_threads()
        try:
            with warnings.catch_warnings():
                # the package ships a TorchScript model; torch>=2.10 flags torch.jit.load itself
                warnings.filterwarnings(
                    "ignore", "`torch.jit.load` is deprecated", DeprecationWarning
                )
                from silero_vad import load_silero_vad

                model = load_silero_vad(onnx=False)
        finally:
            torch.set_num_threads(threads)
        model.eval()
        return cls(model)

    @property
    def model(self) -> torch.jit.ScriptModule:
        """The template model (streams score with copies of it)."""
        return self._model

    def stream(self, options: VadOptions) -> VadStream:
        """A fresh stream with its own model state."""
        return VadStream(copy.deepcopy(self._model), options)

    def speech_regions(
        self, samples: npt.NDArray[np.int16], options: VadOptions
    ) -> list[SpeechRegion]:
        """All speech regions of a whole int16 array (a one-shot stream)."""
        stream = self.stream(options)
        return [*stream.feed(samples), *stream.finish()]


class VadStream:
    """Scores windows as samples arrive and emits each speech region once it can no longer change.

    A region's end depends on the silence before the next region (padding is shared when the gap
    is under two pads), so the last closed region is held until the next one starts or the audio
    has moved two pads past it.
    """

    def __init__(self, model: torch.jit.ScriptModule, options: VadOptions) -> None:
        self._model = model
        self._model.reset_states()
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
    def samples_fed(self) -> int:
        return self._samples_fed

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
        with _one_intra_op_thread():
            for offset in range(0, full, WINDOW_SAMPLES):
                out += self._step(self._score(buffer[offset : offset + WINDOW_SAMPLES]))
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
            window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
            window[: len(self._partial)] = self._partial
            with _one_intra_op_thread():
                out += self._step(self._score(window))
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

    def _score(self, window: npt.NDArray[np.float32]) -> float:
        with torch.no_grad():
            probability = self._model(torch.from_numpy(window), SAMPLE_RATE)
        return float(probability.item())

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
