"""Output heads (docs/gigaam.md §5.6–§5.7): the CTC projection and the RNN-T predictor + joint
network.

Shapes: B batch, d encoder width, T' encoder frames, C classes (blank = C − 1), P predictor width,
J joint width. Names mirror the official state_dict; the greedy search lives in decoding.py.
"""

from __future__ import annotations

import torch
from torch import nn

from gigaam_api.model.config import CtcHeadConfig, RnntHeadConfig

LstmState = tuple[torch.Tensor, torch.Tensor]
"""(h, c), each [layers, B, P]."""


class CtcHead(nn.Module):
    """Kernel-1 Conv1d over encoder frames, then log-softmax."""

    def __init__(self, config: CtcHeadConfig) -> None:
        super().__init__()
        self.decoder_layers = nn.Sequential(nn.Conv1d(config.feat_in, config.num_classes, 1))

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        """[B, d, T'] → [B, T', C] log-probabilities."""
        logits = self.decoder_layers(encoded).transpose(1, 2)
        return torch.log_softmax(logits, dim=-1)


class RnntPredictor(nn.Module):
    """Embedding (padding_idx = blank) → LSTM; "no previous label" is a zero input vector."""

    def __init__(self, config: RnntHeadConfig) -> None:
        super().__init__()
        self.blank_id = config.num_classes - 1
        self.layers = config.pred_rnn_layers
        self.hidden = config.pred_hidden
        self.embed = nn.Embedding(config.num_classes, config.pred_hidden, padding_idx=self.blank_id)
        self.lstm = nn.LSTM(config.pred_hidden, config.pred_hidden, config.pred_rnn_layers)

    def initial_state(self, batch: int, device: torch.device) -> LstmState:
        zeros = torch.zeros(self.layers, batch, self.hidden, device=device)
        return zeros, zeros.clone()

    def forward(
        self, labels: torch.Tensor, has_label: torch.Tensor, state: LstmState
    ) -> tuple[torch.Tensor, LstmState]:
        """labels [B] int64, has_label [B] bool (False: zero input), state → ([B, P], state)."""
        embedded = self.embed(labels.clamp(min=0))
        embedded = torch.where(has_label[:, None], embedded, torch.zeros_like(embedded))
        output, (h, c) = self.lstm(embedded[None], state)  # time-major, one step
        return output[0], (h, c)


class RnntJoint(nn.Module):
    """z = ReLU(enc(f) + pred(g)); logits = joint_net(z)."""

    def __init__(self, config: RnntHeadConfig) -> None:
        super().__init__()
        self.pred = nn.Linear(config.pred_hidden, config.joint_hidden)
        self.enc = nn.Linear(config.enc_hidden, config.joint_hidden)
        self.joint_net = nn.Sequential(
            nn.ReLU(), nn.Linear(config.joint_hidden, config.num_classes)
        )

    def forward(self, enc_projected: torch.Tensor, pred_projected: torch.Tensor) -> torch.Tensor:
        """Already projected [N, J] + [N, J] → [N, C] log-probabilities."""
        logits = self.joint_net(enc_projected + pred_projected)
        return torch.log_softmax(logits, dim=-1)


class RnntHead(nn.Module):
    """The RNN-T head: `decoder` (predictor) and `joint`, as in the official key names."""

    def __init__(self, config: RnntHeadConfig) -> None:
        super().__init__()
        self.decoder = RnntPredictor(config)
        self.joint = RnntJoint(config)

    # The decoding.RnntNetwork protocol: the greedy search drives the head through these.

    def project_encoder(self, encoded: torch.Tensor) -> torch.Tensor:
        """[B, T', d] → [B, T', J] (done once per batch, not per search step)."""
        out: torch.Tensor = self.joint.enc(encoded)
        return out

    def initial_state(self, batch: int, device: torch.device) -> LstmState:
        return self.decoder.initial_state(batch, device)

    def predict(
        self, labels: torch.Tensor, has_label: torch.Tensor, state: LstmState
    ) -> tuple[torch.Tensor, LstmState]:
        """One predictor step → ([N, J] projected predictor output, new state)."""
        output, new_state = self.decoder(labels, has_label, state)
        projected: torch.Tensor = self.joint.pred(output)
        return projected, new_state

    def joint_logprobs(
        self, enc_projected: torch.Tensor, pred_projected: torch.Tensor
    ) -> torch.Tensor:
        out: torch.Tensor = self.joint(enc_projected, pred_projected)
        return out
