"""The GigaAM ASR network (preprocessor → encoder → head) and loading it from official files.

Children are named `preprocessor`, `encoder`, `head`, so the checkpoint's unprefixed keys load with
strict=True. Knows nothing of devices policy, threads, HTTP or the pipeline (engines/ does that).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gigaam_api.model.checkpoint import load_checkpoint
from gigaam_api.model.config import CtcHeadConfig, ModelConfig
from gigaam_api.model.conformer import ConformerEncoder
from gigaam_api.model.decoding import GreedyDecoder, greedy_decoder
from gigaam_api.model.features import FeatureExtractor
from gigaam_api.model.heads import CtcHead, RnntHead
from gigaam_api.model.tokenizer import Tokenizer, load_tokenizer

logger = logging.getLogger(__name__)


class GigaAM(nn.Module):
    """Waveforms [B, N] (zero-padded) with lengths [B] → per-frame outputs the greedy search reads.

    forward() is the whole network as the ONNX export traces it: features, encoder and the head's
    per-frame part (CTC log-probabilities, or RNN-T encoder frames in the joint space).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.preprocessor = FeatureExtractor(config.features)
        self.encoder = ConformerEncoder(config.encoder)
        self.head: CtcHead | RnntHead
        if isinstance(config.head, CtcHeadConfig):
            self.head = CtcHead(config.head)
        else:
            self.head = RnntHead(config.head)

    @property
    def min_samples(self) -> int:
        """Inputs shorter than one STFT window carry no speech; callers treat them as empty."""
        return self.config.features.win_length

    @property
    def min_batch_samples(self) -> int:
        """The narrowest [B, N] batch the front end accepts; callers zero-pad up to it."""
        return self.preprocessor.min_samples

    def encode(
        self, waveforms: torch.Tensor, lengths_samples: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N] float32 samples, [B] lengths → ([B, d, T'] encoded, [B] int64 encoder frames)."""
        features, feature_lengths = self.preprocessor(waveforms, lengths_samples)
        encoded, encoded_lengths = self.encoder(features, feature_lengths)
        return encoded, encoded_lengths

    def forward(
        self, waveforms: torch.Tensor, lengths_samples: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N] samples, [B] lengths → ([B, T', X] frame outputs, [B] int64 encoder frames).

        X is C (CTC log-probabilities, blank = C − 1) or J (RNN-T joint-space encoder frames).
        """
        encoded, encoded_lengths = self.encode(waveforms, lengths_samples)
        outputs: torch.Tensor = self.head(encoded)
        return outputs, encoded_lengths

    def greedy_decoder(self) -> GreedyDecoder:
        """The numpy greedy search over forward()'s outputs (weights copied out of the head)."""
        rnnt_weights = self.head.search_weights() if isinstance(self.head, RnntHead) else None
        return greedy_decoder(
            self.config.kind,
            self.config.blank_id,
            self.config.decoding.max_symbols_per_step,
            rnnt_weights,
        )


@dataclass(frozen=True)
class LoadedNetwork:
    """A ready network (eval mode, fp32, on its device) with its tokenizer."""

    network: GigaAM
    tokenizer: Tokenizer


def load_network(
    checkpoint_path: Path, tokenizer_path: Path | None, *, device: str = "cpu"
) -> LoadedNetwork:
    """Build the network from an official-format checkpoint and load its weights strictly.

    Args:
        checkpoint_path: a `.ckpt` in the official format.
        tokenizer_path: the SentencePiece `.model` for e2e / v1_rnnt models (None for char models).
        device: a torch device string ('cpu', 'cuda', 'mps').

    Returns:
        The network in eval mode, fp32 (fp16-stored weights are up-cast), and its tokenizer.

    Raises:
        CheckpointError: unreadable file or tensors that do not fit the architecture.
        TokenizerError: the tokenizer file is missing or does not match the head.
    """
    checkpoint = load_checkpoint(checkpoint_path, GigaAM)
    tokenizer = load_tokenizer(checkpoint.config.decoding, tokenizer_path)
    network = checkpoint.network.float().eval().to(device)
    logger.info(
        "Loaded %s (%s, %s head, %d parameters) on %s",
        checkpoint.config.name,
        checkpoint_path.name,
        checkpoint.config.kind,
        sum(parameter.numel() for parameter in network.parameters()),
        device,
    )
    return LoadedNetwork(network, tokenizer)
