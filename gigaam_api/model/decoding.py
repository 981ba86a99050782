"""Greedy decoding (docs/gigaam.md §5.6–§5.7): CTC collapse and RNN-T search → token ids with
their frames.

Pure functions over tensors: no text, no tokenizer, no timestamps. The RNN-T search runs a whole
batch at once and gives each sample exactly what a batch of one gives (per-sample state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

LstmState = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class DecodedTokens:
    """One sample's emitted tokens: id, encoder frame where it was emitted, its log-probability."""

    token_ids: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()
    logprobs: tuple[float, ...] = ()

    @property
    def avg_logprob(self) -> float:
        """Mean log-probability of the emitted tokens (0.0 when none)."""
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else 0.0


def ctc_greedy(
    log_probs: torch.Tensor, lengths: torch.Tensor, blank_id: int
) -> list[DecodedTokens]:
    """Greedy CTC over [B, T', C] log-probs with [B] valid frames.

    Frame t is kept iff its argmax is not blank and differs from the raw argmax at t − 1 (blanks
    included, so "a _ a" gives two tokens); the token's frame is the first of its run.
    """
    best_logprobs, labels = log_probs.max(dim=-1)  # [B, T']
    previous = torch.cat((torch.full_like(labels[:, :1], -1), labels[:, :-1]), dim=1)
    in_length = torch.arange(labels.shape[1], device=labels.device)[None, :] < lengths[:, None]
    keep = (labels != blank_id) & (labels != previous) & in_length
    results: list[DecodedTokens] = []
    for row in range(labels.shape[0]):
        frames = keep[row].nonzero().squeeze(1)
        results.append(
            DecodedTokens(
                token_ids=tuple(labels[row, frames].tolist()),
                frames=tuple(frames.tolist()),
                logprobs=tuple(best_logprobs[row, frames].tolist()),
            )
        )
    return results


class RnntNetwork(Protocol):
    """What the RNN-T search needs from the head (heads.RnntHead implements it)."""

    def project_encoder(self, encoded: torch.Tensor) -> torch.Tensor:
        """[B, T', d] encoder frames → [B, T', J] joint-space projections."""
        ...

    def initial_state(self, batch: int, device: torch.device) -> LstmState:
        """Zero predictor state for `batch` samples ([layers, batch, P] each)."""
        ...

    def predict(
        self, labels: torch.Tensor, has_label: torch.Tensor, state: LstmState
    ) -> tuple[torch.Tensor, LstmState]:
        """One predictor step on [N] labels (zero input where not has_label) → ([N, J], state)."""
        ...

    def joint_logprobs(
        self, enc_projected: torch.Tensor, pred_projected: torch.Tensor
    ) -> torch.Tensor:
        """[N, J] + [N, J] → [N, C] log-probabilities."""
        ...


@torch.no_grad()
def rnnt_greedy(
    encoded: torch.Tensor,
    lengths: torch.Tensor,
    network: RnntNetwork,
    blank_id: int,
    max_symbols_per_step: int,
) -> list[DecodedTokens]:
    """Greedy RNN-T over [B, T', d] encoder frames with [B] valid frames.

    Per frame, up to max_symbols_per_step tokens are emitted; a blank ends the frame. The
    predictor state advances only when a token is emitted (the token is consumed by the next step).
    """
    batch, frames_total, _ = encoded.shape
    device = encoded.device
    enc_projected = network.project_encoder(encoded).transpose(0, 1)  # [T', B, J]
    no_label = torch.zeros(batch, dtype=torch.bool, device=device)
    pred, (h, c) = network.predict(
        torch.full((batch,), blank_id, dtype=torch.long, device=device),
        no_label,
        network.initial_state(batch, device),
    )
    token_ids: list[list[int]] = [[] for _ in range(batch)]
    token_frames: list[list[int]] = [[] for _ in range(batch)]
    token_logprobs: list[list[float]] = [[] for _ in range(batch)]
    for frame in range(frames_total):
        active = (lengths > frame).nonzero().squeeze(1)
        for _ in range(max_symbols_per_step):
            if active.numel() == 0:
                break
            best_logprobs, best = network.joint_logprobs(
                enc_projected[frame, active], pred[active]
            ).max(-1)
            emitting = best != blank_id
            active = active[emitting]
            if active.numel() == 0:
                break
            labels = best[emitting]
            for sample, label, logprob in zip(
                active.tolist(), labels.tolist(), best_logprobs[emitting].tolist(), strict=True
            ):
                token_ids[sample].append(label)
                token_frames[sample].append(frame)
                token_logprobs[sample].append(logprob)
            step_pred, (step_h, step_c) = network.predict(
                labels, torch.ones_like(labels, dtype=torch.bool), (h[:, active], c[:, active])
            )
            pred[active] = step_pred
            h[:, active] = step_h
            c[:, active] = step_c
    return [
        DecodedTokens(tuple(ids), tuple(frames), tuple(logprobs))
        for ids, frames, logprobs in zip(token_ids, token_frames, token_logprobs, strict=True)
    ]
