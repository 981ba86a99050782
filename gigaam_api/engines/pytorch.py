"""The PyTorch engine: runs the GigaAM network on a batch of waveforms and assembles ChunkResults.

Owns the runtime policy (device choice, intra-op threads, int8 quantization, inference_mode);
knows nothing of files beyond loading, VAD, chunking or HTTP.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gigaam_api.engines.base import Waveform
from gigaam_api.errors import ModelError
from gigaam_api.model.gigaam import GigaAM, LoadedModel, load_model
from gigaam_api.model.timestamps import frame_shift_s, words_from_tokens
from gigaam_api.model.tokenizer import Tokenizer
from gigaam_api.types import SAMPLE_RATE, ChunkResult, Word

logger = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """'auto' → cuda, then mps, then cpu; an explicit device must be available.

    Raises:
        ModelError: the requested device is unknown or not available on this machine.
    """
    cuda = torch.cuda.is_available()
    mps = torch.backends.mps.is_available()
    if device == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    available = {"cpu": True, "cuda": cuda, "mps": mps}
    if device not in available:
        raise ModelError(f"DEVICE={device!r} is not one of auto, cpu, cuda, mps")
    if not available[device]:
        raise ModelError(f"DEVICE={device} was requested but it is not available here")
    return device


def quantize_encoder_int8(network: GigaAM) -> None:
    """Replace the encoder's nn.Linear layers with dynamically quantized int8 ones (CPU)."""
    # torch marks its eager quantization API deprecated (in favour of torchao, not installed
    # here) yet it still works; silence only those warnings, only for this call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        # in place: no second copy of the fp32 encoder at load time
        torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]  # unannotated in torch
            network.encoder, {nn.Linear}, dtype=torch.qint8, inplace=True
        )


def _mono_arrays(waveforms: Sequence[Waveform]) -> list[Waveform]:
    arrays = [np.asarray(waveform, dtype=np.float32) for waveform in waveforms]
    for array in arrays:
        if array.ndim != 1:
            raise ValueError(f"a waveform must be 1-D mono samples, got shape {array.shape}")
    return arrays


class TorchEngine:
    """gigaam_api.engines.base.Engine on PyTorch. Build it with from_files()."""

    def __init__(
        self, loaded: LoadedModel, *, model_id: str, device: str, precision: str = "fp32"
    ) -> None:
        self._network = loaded.network
        self._tokenizer = loaded.tokenizer
        self._model_id = model_id
        self._device = device
        self._precision = precision

    @classmethod
    def from_files(
        cls,
        checkpoint_path: Path,
        tokenizer_path: Path | None,
        *,
        model_id: str,
        device: str = "auto",
        num_threads: int | None = None,
        quantize_int8: bool = False,
    ) -> TorchEngine:
        """Load an official-format checkpoint and prepare it for inference.

        Args:
            checkpoint_path: the `.ckpt` file.
            tokenizer_path: its SentencePiece model (None for character models).
            model_id: the name reported as model_id.
            device: 'auto' (cuda → mps → cpu), 'cpu', 'cuda' or 'mps'.
            num_threads: torch intra-op threads, set once here (None leaves torch's default).
            quantize_int8: dynamic int8 quantization of the encoder's Linear layers; CPU only,
                logged and ignored elsewhere.

        Raises:
            ModelError (or a subclass): bad device, checkpoint or tokenizer.
        """
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        resolved = resolve_device(device)
        loaded = load_model(checkpoint_path, tokenizer_path, device=resolved)
        precision = "fp32"
        if quantize_int8:
            if resolved == "cpu":
                quantize_encoder_int8(loaded.network)
                precision = "int8"
                logger.info("Encoder Linear layers quantized to int8 (dynamic)")
            else:
                logger.warning("QUANTIZE_INT8 applies to CPU only; ignored on %s", resolved)
        logger.info(
            "Engine ready: model %s on %s, %d intra-op threads",
            model_id,
            resolved,
            torch.get_num_threads(),
        )
        return cls(loaded, model_id=model_id, device=resolved, precision=precision)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def device(self) -> str:
        return self._device

    @property
    def engine(self) -> str:
        return "torch"

    @property
    def precision(self) -> str:
        return self._precision

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def network(self) -> GigaAM:
        """The underlying nn.Module (eval mode), for callers that need the raw network."""
        return self._network

    def _batch(self, waveforms: Sequence[Waveform]) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-pad 1-D waveforms into [B, N] float32 on the device, with [B] lengths."""
        arrays = _mono_arrays(waveforms)
        lengths = [array.shape[0] for array in arrays]
        batch = np.zeros((len(arrays), max(lengths, default=0)), dtype=np.float32)
        for row, array in enumerate(arrays):
            batch[row, : array.shape[0]] = array
        return (
            torch.from_numpy(batch).to(self._device),
            torch.tensor(lengths, dtype=torch.long, device=self._device),
        )

    def encode(self, waveforms: Sequence[Waveform]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output of each waveform: ([B, d, T'] float32 on CPU, [B] int64 valid frames).

        Frames at or past a sample's length are padding. Inputs shorter than one STFT window
        have 0 valid frames.
        """
        if not waveforms:
            raise ValueError("encode() needs at least one waveform")
        with torch.inference_mode():
            encoded, lengths = self._network(*self._batch(waveforms))
            return encoded.float().cpu(), lengths.cpu()

    def ctc_log_probs(self, waveforms: Sequence[Waveform]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame CTC log-probabilities ([B, T', C] on CPU, blank = C − 1) and [B] frames.

        Raises:
            TypeError: the model has an RNN-T head.
        """
        if not waveforms:
            raise ValueError("ctc_log_probs() needs at least one waveform")
        with torch.inference_mode():
            encoded, lengths = self._network(*self._batch(waveforms))
            return self._network.ctc_log_probs(encoded).cpu(), lengths.cpu()

    def transcribe_batch(
        self, waveforms: Sequence[Waveform], *, word_timestamps: bool = True
    ) -> list[ChunkResult]:
        """Transcribe each waveform (see Engine.transcribe_batch); word times are chunk-local."""
        arrays = _mono_arrays(waveforms)
        results = [ChunkResult(text="") for _ in arrays]
        usable = [
            index
            for index, array in enumerate(arrays)
            if array.shape[0] >= self._network.min_samples
        ]
        if not usable:
            return results
        with torch.inference_mode():
            encoded, lengths = self._network(*self._batch([arrays[i] for i in usable]))
            decoded = self._network.decode(encoded, lengths)
        for index, tokens, frames in zip(usable, decoded, lengths.tolist(), strict=True):
            words: tuple[Word, ...] = ()
            if word_timestamps:
                shift = frame_shift_s(arrays[index].shape[0] / SAMPLE_RATE, frames)
                words = words_from_tokens(tokens.token_ids, tokens.frames, self._tokenizer, shift)
            results[index] = ChunkResult(
                text=self._tokenizer.decode(tokens.token_ids).strip(),
                words=words,
                avg_logprob=tokens.avg_logprob,
            )
        return results
