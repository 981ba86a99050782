"""What every engine does around its network: batch the waveforms, decode, build ChunkResults.

A concrete engine (engines/pytorch.py, engines/onnx.py) supplies only `_run`, the network on a
zero-padded batch; skipping too-short inputs, the numpy greedy search, text and word timestamps
are shared here, so both engines give the same result for the same frame outputs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from gigaam_api.engines.base import Waveform
from gigaam_api.model.decoding import GreedyDecoder
from gigaam_api.model.timestamps import frame_shift_s, words_from_tokens
from gigaam_api.model.tokenizer import Tokenizer
from gigaam_api.model.transducer import FloatArray, IntArray
from gigaam_api.types import SAMPLE_RATE, ChunkResult, Word


def mono_arrays(waveforms: Sequence[Waveform]) -> list[Waveform]:
    """The waveforms as float32 arrays; ValueError for anything but 1-D mono samples."""
    arrays = [np.asarray(waveform, dtype=np.float32) for waveform in waveforms]
    for array in arrays:
        if array.ndim != 1:
            raise ValueError(f"a waveform must be 1-D mono samples, got shape {array.shape}")
    return arrays


def pad_batch(arrays: Sequence[Waveform], min_width: int) -> tuple[FloatArray, IntArray]:
    """Zero-pad 1-D arrays into [B, max(longest, min_width)] float32, with [B] int64 lengths."""
    lengths = np.array([array.shape[0] for array in arrays], dtype=np.int64)
    batch = np.zeros((len(arrays), max(int(lengths.max(initial=0)), min_width)), dtype=np.float32)
    for row, array in enumerate(arrays):
        batch[row, : array.shape[0]] = array
    return batch, lengths


class NetworkEngine(ABC):
    """gigaam_api.engines.base.Engine for any runtime that can run the exported network.

    `rows_per_run` caps the waveforms per network call (None: the whole batch at once).
    """

    def __init__(
        self,
        *,
        model_id: str,
        device: str,
        engine: str,
        precision: str,
        tokenizer: Tokenizer,
        decoder: GreedyDecoder,
        min_samples: int,
        min_batch_samples: int,
        rows_per_run: int | None = None,
    ) -> None:
        self._model_id = model_id
        self._device = device
        self._engine = engine
        self._precision = precision
        self._tokenizer = tokenizer
        self._decoder = decoder
        self._min_samples = min_samples
        self._min_batch_samples = min_batch_samples
        self._rows_per_run = rows_per_run

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def device(self) -> str:
        return self._device

    @property
    def engine(self) -> str:
        return self._engine

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def decoder(self) -> GreedyDecoder:
        return self._decoder

    @abstractmethod
    def _run(self, batch: FloatArray, lengths: IntArray) -> tuple[FloatArray, IntArray]:
        """The network on [B, N] zero-padded samples with [B] lengths → ([B, T', X] frame
        outputs as float32, [B] int64 valid encoder frames)."""

    def frame_outputs(self, waveforms: Sequence[Waveform]) -> tuple[FloatArray, IntArray]:
        """The network's per-frame outputs for each waveform (padding frames past each length).

        CTC models give [B, T', C] log-probabilities (blank = C − 1); RNN-T models give the
        encoder frames projected into the joint space, [B, T', J].
        """
        if not waveforms:
            raise ValueError("frame_outputs() needs at least one waveform")
        return self._run(*pad_batch(mono_arrays(waveforms), self._min_batch_samples))

    def transcribe_batch(
        self, waveforms: Sequence[Waveform], *, word_timestamps: bool = True
    ) -> list[ChunkResult]:
        """Transcribe each waveform (see Engine.transcribe_batch); word times are chunk-local.

        With `rows_per_run` set (CPU engines: 1), the network sees at most that many waveforms
        per call: on a CPU a padded batch costs more time and memory than its rows one by one
        (D-051).
        """
        arrays = mono_arrays(waveforms)
        results = [ChunkResult(text="") for _ in arrays]
        usable = [i for i, array in enumerate(arrays) if array.shape[0] >= self._min_samples]
        step = self._rows_per_run or max(len(usable), 1)
        for first in range(0, len(usable), step):
            rows = usable[first : first + step]
            outputs, lengths = self._run(
                *pad_batch([arrays[i] for i in rows], self._min_batch_samples)
            )
            decoded = self._decoder.decode(outputs, lengths)
            for index, tokens, frames in zip(rows, decoded, lengths.tolist(), strict=True):
                words: tuple[Word, ...] = ()
                if word_timestamps:
                    shift = frame_shift_s(arrays[index].shape[0] / SAMPLE_RATE, frames)
                    words = words_from_tokens(
                        tokens.token_ids, tokens.frames, self._tokenizer, shift
                    )
                results[index] = ChunkResult(
                    text=self._tokenizer.decode(tokens.token_ids).strip(),
                    words=words,
                    avg_logprob=tokens.avg_logprob,
                )
        return results
