"""The engine contract: a batch of 16 kHz mono float32 waveforms in, one ChunkResult each out.

The pipeline depends on this protocol only, so a second backend (ONNX Runtime) can be added
beside engines/pytorch.py without touching the pipeline or the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gigaam_api.types import ChunkResult

Waveform = npt.NDArray[np.float32]
"""Mono samples at SAMPLE_RATE, values in [-1, 1)."""


class Engine(Protocol):
    """A loaded GigaAM model that transcribes batches of waveforms."""

    @property
    def model_id(self) -> str:
        """The model's name (official name, or a local checkpoint's file stem)."""
        ...

    @property
    def device(self) -> str:
        """Where it computes: 'cpu', 'cuda' or 'mps'."""
        ...

    @property
    def engine(self) -> str:
        """The runtime that computes: 'torch' (or 'onnx')."""
        ...

    @property
    def precision(self) -> str:
        """The encoder's arithmetic as run: 'fp32' or 'int8'."""
        ...

    def transcribe_batch(
        self, waveforms: Sequence[Waveform], *, word_timestamps: bool = True
    ) -> list[ChunkResult]:
        """Transcribe each waveform; word times are relative to that waveform's start.

        The result equals transcribing each waveform alone (padding is masked). Empty or
        shorter-than-one-window input gives an empty ChunkResult.
        """
        ...
