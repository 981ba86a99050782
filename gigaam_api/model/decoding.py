"""Greedy decoding (docs/gigaam.md §5.6–§5.7): CTC collapse and RNN-T search → token ids with
their frames.

Pure numpy over the network's per-frame outputs, shared by the torch and ONNX engines: no torch,
no text, no tokenizer, no timestamps. The RNN-T search runs a whole batch at once and gives each
sample exactly what a batch of one gives (per-sample state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gigaam_api.model.transducer import FloatArray, IntArray, LstmState, RnntPredictorJoint


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


class GreedyDecoder(Protocol):
    """Turns a batch of the network's frame outputs into tokens (CtcGreedy or RnntGreedy)."""

    def decode(self, outputs: FloatArray, lengths: IntArray) -> list[DecodedTokens]:
        """[B, T', X] float32 frame outputs with [B] valid frames → one DecodedTokens each."""
        ...


def ctc_greedy(log_probs: FloatArray, lengths: IntArray, blank_id: int) -> list[DecodedTokens]:
    """Greedy CTC over [B, T', C] log-probs with [B] valid frames.

    Frame t is kept iff its argmax is not blank and differs from the raw argmax at t − 1 (blanks
    included, so "a _ a" gives two tokens); the token's frame is the first of its run.
    """
    labels = log_probs.argmax(axis=-1)  # [B, T']
    best_logprobs = np.take_along_axis(log_probs, labels[:, :, None], axis=-1)[:, :, 0]
    previous = np.concatenate((np.full_like(labels[:, :1], -1), labels[:, :-1]), axis=1)
    in_length = np.arange(labels.shape[1])[None, :] < np.asarray(lengths)[:, None]
    keep = (labels != blank_id) & (labels != previous) & in_length
    results: list[DecodedTokens] = []
    for row in range(labels.shape[0]):
        frames = np.flatnonzero(keep[row])
        results.append(
            DecodedTokens(
                token_ids=tuple(labels[row, frames].tolist()),
                frames=tuple(frames.tolist()),
                logprobs=tuple(best_logprobs[row, frames].tolist()),
            )
        )
    return results


class RnntNetwork(Protocol):
    """What the RNN-T search needs from the head (transducer.RnntPredictorJoint implements it)."""

    @property
    def no_label(self) -> int:
        """The label that starts the search: a zero predictor input."""
        ...

    def initial_state(self, batch: int) -> LstmState:
        """Zero predictor state for `batch` samples ([layers, batch, P] each)."""
        ...

    def predict(self, labels: IntArray, state: LstmState) -> tuple[FloatArray, LstmState]:
        """One predictor step on [N] labels → ([N, J] projected output, new state)."""
        ...

    def joint_best(
        self, enc_projected: FloatArray, pred_projected: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        """[N, J] + [N, J] → best class [N] and its log-probability [N]."""
        ...


def rnnt_greedy(
    enc_projected: FloatArray,
    lengths: IntArray,
    network: RnntNetwork,
    blank_id: int,
    max_symbols_per_step: int,
) -> list[DecodedTokens]:
    """Greedy RNN-T over [B, T', J] encoder frames (already in the joint space), [B] valid frames.

    Per frame, up to max_symbols_per_step tokens are emitted; a blank ends the frame. The
    predictor state advances only when a token is emitted (the token is consumed by the next step).
    """
    batch, frames_total, _ = enc_projected.shape
    lengths = np.asarray(lengths)
    pred, (h, c) = network.predict(
        np.full(batch, network.no_label, dtype=np.int64), network.initial_state(batch)
    )
    token_ids: list[list[int]] = [[] for _ in range(batch)]
    token_frames: list[list[int]] = [[] for _ in range(batch)]
    token_logprobs: list[list[float]] = [[] for _ in range(batch)]
    for frame in range(frames_total):
        active = np.flatnonzero(lengths > frame)
        for _ in range(max_symbols_per_step):
            if active.size == 0:
                break
            best, best_logprobs = network.joint_best(enc_projected[active, frame], pred[active])
            emitting = best != blank_id
            active = active[emitting]
            if active.size == 0:
                break
            labels = best[emitting]
            for sample, label, logprob in zip(
                active.tolist(), labels.tolist(), best_logprobs[emitting].tolist(), strict=True
            ):
                token_ids[sample].append(label)
                token_frames[sample].append(frame)
                token_logprobs[sample].append(logprob)
            if active.size == batch:  # every sample advances: no gather and scatter
                pred, (h, c) = network.predict(labels, (h, c))
                continue
            step_pred, (step_h, step_c) = network.predict(labels, (h[:, active], c[:, active]))
            pred[active] = step_pred
            h[:, active] = step_h
            c[:, active] = step_c
    return [
        DecodedTokens(tuple(ids), tuple(frames), tuple(logprobs))
        for ids, frames, logprobs in zip(token_ids, token_frames, token_logprobs, strict=True)
    ]


@dataclass(frozen=True)
class CtcGreedy:
    """GreedyDecoder over CTC log-probabilities."""

    blank_id: int

    def decode(self, outputs: FloatArray, lengths: IntArray) -> list[DecodedTokens]:
        return ctc_greedy(outputs, lengths, self.blank_id)


@dataclass(frozen=True)
class RnntGreedy:
    """GreedyDecoder over encoder frames projected into the joint space."""

    network: RnntNetwork
    blank_id: int
    max_symbols_per_step: int

    def decode(self, outputs: FloatArray, lengths: IntArray) -> list[DecodedTokens]:
        return rnnt_greedy(outputs, lengths, self.network, self.blank_id, self.max_symbols_per_step)


def greedy_decoder(
    kind: str,
    blank_id: int,
    max_symbols_per_step: int,
    rnnt_weights: Mapping[str, npt.NDArray[np.floating]] | None = None,
) -> GreedyDecoder:
    """The decoder of a model: CtcGreedy for 'ctc'; for 'rnnt', RnntGreedy over its head weights.

    Raises:
        ValueError: an unknown kind, or an RNN-T model without its head weights.
    """
    if kind == "ctc":
        return CtcGreedy(blank_id)
    if kind != "rnnt":
        raise ValueError(f"unknown model kind {kind!r}")
    if rnnt_weights is None:
        raise ValueError("an RNN-T decoder needs the head's weights")
    return RnntGreedy(RnntPredictorJoint(rnnt_weights), blank_id, max_symbols_per_step)
