"""The PyTorch engine: runs the GigaAM network on a batch of waveforms (CPU, CUDA or MPS).

Owns the torch runtime policy (device choice, intra-op threads, int8 quantization,
inference_mode); decoding and ChunkResults come from engines/network.py. Knows nothing of VAD,
chunking or HTTP.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from gigaam_api.engines.base import Waveform
from gigaam_api.engines.network import NetworkEngine, mono_arrays, pad_batch
from gigaam_api.errors import ModelError
from gigaam_api.model.gigaam import GigaAM, LoadedNetwork, load_network
from gigaam_api.model.transducer import FloatArray, IntArray

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


class TorchEngine(NetworkEngine):
    """gigaam_api.engines.base.Engine on PyTorch. Build it with from_files()."""

    def __init__(
        self, loaded: LoadedNetwork, *, model_id: str, device: str, precision: str = "fp32"
    ) -> None:
        network = loaded.network
        super().__init__(
            model_id=model_id,
            device=device,
            engine="torch",
            precision=precision,
            tokenizer=loaded.tokenizer,
            decoder=network.greedy_decoder(),
            min_samples=network.min_samples,
            min_batch_samples=network.min_batch_samples,
            rows_per_run=1 if device == "cpu" else None,
        )
        self._network = network

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
        loaded = load_network(checkpoint_path, tokenizer_path, device=resolved)
        precision = "fp32"
        if quantize_int8:
            if resolved == "cpu":
                quantize_encoder_int8(loaded.network)
                precision = "int8"
                logger.info("Encoder Linear layers quantized to int8 (dynamic)")
            else:
                logger.warning("QUANTIZE_INT8 applies to CPU only; ignored on %s", resolved)
        logger.info(
            "Engine ready: model %s on torch %s, %d intra-op threads",
            model_id,
            resolved,
            torch.get_num_threads(),
        )
        return cls(loaded, model_id=model_id, device=resolved, precision=precision)

    @property
    def network(self) -> GigaAM:
        """The underlying nn.Module (eval mode), for callers that need the raw network."""
        return self._network

    def _tensors(self, batch: FloatArray, lengths: IntArray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(batch).to(self.device), torch.from_numpy(lengths).to(self.device)

    def _run(self, batch: FloatArray, lengths: IntArray) -> tuple[FloatArray, IntArray]:
        with torch.inference_mode():
            outputs, frames = self._network(*self._tensors(batch, lengths))
            return outputs.float().cpu().numpy(), frames.cpu().numpy()

    def encode(self, waveforms: Sequence[Waveform]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output of each waveform: ([B, d, T'] float32 on CPU, [B] int64 valid frames).

        Frames at or past a sample's length are padding. Inputs shorter than one STFT window
        have 0 valid frames.
        """
        if not waveforms:
            raise ValueError("encode() needs at least one waveform")
        batch, lengths = pad_batch(mono_arrays(waveforms), self._network.min_batch_samples)
        with torch.inference_mode():
            encoded, frames = self._network.encode(*self._tensors(batch, lengths))
            return encoded.float().cpu(), frames.cpu()
