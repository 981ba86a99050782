"""Output heads (docs/gigaam.md §5.6–§5.7): the CTC projection and the RNN-T predictor + joint
network.

Shapes: B batch, d encoder width, T' encoder frames, C classes (blank = C − 1), P predictor width,
J joint width. Names mirror the official state_dict. The network computes the per-frame part
(CTC log-probabilities, or encoder frames projected into the joint space); the RNN-T prediction
and joint steps run in numpy during the greedy search (model/transducer.py, shared with the ONNX
engine), so the predictor modules here only hold the official weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gigaam_api.model.config import CtcHeadConfig, RnntHeadConfig
from gigaam_api.model.conformer import PointwiseConv1d


class CtcHead(nn.Module):
    """Kernel-1 Conv1d over encoder frames (computed as a matrix product), then log-softmax."""

    def __init__(self, config: CtcHeadConfig) -> None:
        super().__init__()
        self.decoder_layers = nn.Sequential(PointwiseConv1d(config.feat_in, config.num_classes))

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        """[B, d, T'] → [B, T', C] log-probabilities."""
        logits = self.decoder_layers(encoded.transpose(1, 2))
        return torch.log_softmax(logits, dim=-1)


class RnntPredictor(nn.Module):
    """Embedding (padding_idx = blank) → LSTM; "no previous label" is a zero input vector."""

    def __init__(self, config: RnntHeadConfig) -> None:
        super().__init__()
        blank_id = config.num_classes - 1
        self.embed = nn.Embedding(config.num_classes, config.pred_hidden, padding_idx=blank_id)
        self.lstm = nn.LSTM(config.pred_hidden, config.pred_hidden, config.pred_rnn_layers)


class RnntJoint(nn.Module):
    """z = ReLU(enc(f) + pred(g)); logits = joint_net(z)."""

    def __init__(self, config: RnntHeadConfig) -> None:
        super().__init__()
        self.pred = nn.Linear(config.pred_hidden, config.joint_hidden)
        self.enc = nn.Linear(config.enc_hidden, config.joint_hidden)
        self.joint_net = nn.Sequential(
            nn.ReLU(), nn.Linear(config.joint_hidden, config.num_classes)
        )


class RnntHead(nn.Module):
    """The RNN-T head: `decoder` (predictor) and `joint`, as in the official key names."""

    def __init__(self, config: RnntHeadConfig) -> None:
        super().__init__()
        self.decoder = RnntPredictor(config)
        self.joint = RnntJoint(config)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        """[B, d, T'] → [B, T', J]: the joint network's encoder projection, once per frame."""
        out: torch.Tensor = self.joint.enc(encoded.transpose(1, 2))
        return out

    def search_weights(self) -> dict[str, np.ndarray]:
        """The predictor and joint weights the numpy search needs (state_dict names, float32).

        joint.enc is left out: the network applies it (forward), the search never does.
        """
        return {
            name: tensor.detach().float().cpu().numpy()
            for name, tensor in self.state_dict().items()
            if not name.startswith("joint.enc.")
        }
