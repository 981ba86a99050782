"""Greedy CTC collapse and RNN-T search on hand-made scores (a scripted RNN-T test double), and
the numpy RNN-T predictor + joint against torch's own LSTM and Linear layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gigaam_api.model.config import RnntHeadConfig
from gigaam_api.model.decoding import (
    CtcGreedy,
    DecodedTokens,
    RnntGreedy,
    ctc_greedy,
    greedy_decoder,
    rnnt_greedy,
)
from gigaam_api.model.heads import RnntHead
from gigaam_api.model.transducer import FloatArray, IntArray, LstmState, RnntPredictorJoint

BLANK = 3
CLASSES = 4


def _log_probs(rows: list[list[int]]) -> FloatArray:
    """Label sequences → [B, T, C] log-probs whose argmax is that label (0.9 probability)."""
    frames = max(len(row) for row in rows)
    probs = np.full((len(rows), frames, CLASSES), 0.1 / (CLASSES - 1), dtype=np.float32)
    for b, row in enumerate(rows):
        for t in range(frames):
            probs[b, t, row[t] if t < len(row) else BLANK] = 0.9
    return np.log(probs)


@pytest.mark.parametrize(
    ("labels", "length", "ids", "frames"),
    [
        ([0, 0, 3, 0], 4, (0, 0), (0, 3)),  # repeat separated by blank → emitted twice
        ([3, 1, 1, 2, 2, 3], 6, (1, 2), (1, 3)),  # runs collapse to their first frame
        ([1, 3, 1], 3, (1, 1), (0, 2)),
        ([1, 1, 1], 3, (1,), (0,)),
        ([3, 3, 3], 3, (), ()),
        ([1, 2, 0, 1], 2, (1, 2), (0, 1)),  # frames past the length are ignored
        ([2, 2], 0, (), ()),
    ],
)
def test_ctc_greedy_collapses_against_the_raw_previous_label(
    labels: list[int], length: int, ids: tuple[int, ...], frames: tuple[int, ...]
) -> None:
    [result] = ctc_greedy(_log_probs([labels]), np.array([length]), BLANK)
    assert result.token_ids == ids
    assert result.frames == frames
    assert len(result.logprobs) == len(ids)
    assert all(abs(logprob - np.log(0.9)) < 1e-6 for logprob in result.logprobs)


def test_ctc_greedy_rows_are_independent() -> None:
    rows = [[0, 3, 1, 1], [2, 2, 3, 3]]
    batched = ctc_greedy(_log_probs(rows), np.array([4, 2]), BLANK)
    alone = [
        ctc_greedy(_log_probs([row]), np.array([n]), BLANK)[0]
        for row, n in ((rows[0], 4), (rows[1][:2], 2))
    ]
    assert batched == alone
    assert batched[1].token_ids == (2,)


def test_avg_logprob_is_the_mean_over_tokens() -> None:
    assert DecodedTokens((1, 2), (0, 1), (-1.0, -3.0)).avg_logprob == -2.0
    assert DecodedTokens().avg_logprob == 0.0


class ScriptedRnnt:
    """An RNN-T double: sample s emits script[s] = [(frame, token), ...] in order, else blank.

    The encoder value carries (sample, frame); the predictor state counts consumed labels, so the
    joint can tell which scripted emission is next. Every predictor call is recorded.
    """

    no_label = 99

    def __init__(self, scripts: list[list[tuple[int, int]]]) -> None:
        self.scripts = scripts
        self.calls: list[list[int]] = []

    def initial_state(self, batch: int) -> LstmState:
        zeros = np.zeros((1, batch, 1), dtype=np.float32)
        return zeros, zeros.copy()

    def predict(self, labels: IntArray, state: LstmState) -> tuple[FloatArray, LstmState]:
        self.calls.append(labels.tolist())
        count = state[0] + (labels != self.no_label).astype(np.float32)[None, :, None]
        last = np.where(labels != self.no_label, labels, -1).astype(np.float32)
        return np.stack((count[0, :, 0], last), axis=1), (count, state[1])

    def joint_best(
        self, enc_projected: FloatArray, pred_projected: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        best = np.full(enc_projected.shape[0], BLANK, dtype=np.int64)
        for row in range(enc_projected.shape[0]):
            sample, frame = int(enc_projected[row, 0]), int(enc_projected[row, 1])
            consumed, last = int(pred_projected[row, 0]), int(pred_projected[row, 1])
            script = self.scripts[sample]
            if consumed > 0:  # the predictor has consumed exactly the previous emission
                assert last == script[consumed - 1][1]
            if consumed < len(script) and script[consumed][0] == frame:
                best[row] = script[consumed][1]
        return best, np.full(best.shape, -0.5, dtype=np.float32)


def _encoded(samples: list[int], frames: int) -> FloatArray:
    """[B, T, 2] holding (sample id, frame index)."""
    grid = np.zeros((len(samples), frames, 2), dtype=np.float32)
    for b, sample in enumerate(samples):
        grid[b, :, 0] = sample
        grid[b, :, 1] = np.arange(frames)
    return grid


@pytest.mark.parametrize(
    ("script", "length", "max_symbols", "ids", "frames"),
    [
        ([(0, 1), (0, 2), (2, 0)], 4, 10, (1, 2, 0), (0, 0, 2)),
        ([], 3, 10, (), ()),
        ([(1, 2), (1, 2), (1, 2)], 3, 2, (2, 2), (1, 1)),  # capped at max symbols per frame
        ([(0, 1)] * 12, 2, 10, (1,) * 10, (0,) * 10),
        ([(0, 1), (3, 2)], 3, 10, (1,), (0,)),  # frame 3 is past the length
    ],
)
def test_rnnt_greedy_follows_the_script(
    script: list[tuple[int, int]],
    length: int,
    max_symbols: int,
    ids: tuple[int, ...],
    frames: tuple[int, ...],
) -> None:
    network = ScriptedRnnt([script])
    [result] = rnnt_greedy(_encoded([0], 4), np.array([length]), network, BLANK, max_symbols)
    assert result.token_ids == ids
    assert result.frames == frames
    # one start step with "no label", then exactly one predictor step per emitted token
    assert network.calls == [[ScriptedRnnt.no_label], *([token] for token in ids)]


def test_rnnt_batched_search_equals_per_sample_search() -> None:
    scripts = [[(0, 1), (0, 2), (3, 0)], [(1, 2), (1, 2)], [(0, 0), (2, 1), (2, 1), (2, 0)]]
    lengths = [5, 2, 3]
    network = ScriptedRnnt(scripts)
    batched = rnnt_greedy(_encoded([0, 1, 2], 5), np.array(lengths), network, BLANK, 10)
    alone = [
        rnnt_greedy(_encoded([s], lengths[s]), np.array([lengths[s]]), network, BLANK, 10)[0]
        for s in range(3)
    ]
    assert batched == alone
    assert [r.token_ids for r in batched] == [(1, 2, 0), (2, 2), (0, 1, 1, 0)]


@pytest.mark.parametrize("layers", [1, 2])
def test_numpy_predictor_and_joint_equal_the_torch_modules(layers: int) -> None:
    torch.manual_seed(layers)
    config = RnntHeadConfig(
        pred_hidden=12, pred_rnn_layers=layers, enc_hidden=10, joint_hidden=8, num_classes=7
    )
    head = RnntHead(config)
    with torch.no_grad():
        for parameter in head.parameters():
            parameter.normal_(0.0, 0.8)  # large enough to reach the gates' saturation
        head.decoder.embed.weight[config.num_classes - 1] = 0.0
    network = RnntPredictorJoint(head.search_weights())
    state = network.initial_state(3)
    torch_state = (torch.zeros(layers, 3, 12), torch.zeros(layers, 3, 12))
    steps = [[network.no_label] * 3, [0, 5, 6], [3, 3, 1]]
    enc = torch.randn(3, 10)
    for labels in steps:
        pred, state = network.predict(np.array(labels, dtype=np.int64), state)
        embedded = torch.stack(
            [
                torch.zeros(12) if label == network.no_label else head.decoder.embed.weight[label]
                for label in labels
            ]
        )
        with torch.no_grad():
            output, torch_state = head.decoder.lstm(embedded[None], torch_state)
            torch_pred = head.joint.pred(output[0])
            logits = head.joint.joint_net(head.joint.enc(enc) + torch_pred)
        np.testing.assert_allclose(pred, torch_pred.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state[0], torch_state[0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state[1], torch_state[1].numpy(), rtol=1e-5, atol=1e-5)
        best, logprob = network.joint_best(head.joint.enc(enc).detach().numpy(), pred)
        reference = torch.log_softmax(logits, dim=-1).max(dim=-1)
        assert best.tolist() == reference.indices.tolist()
        np.testing.assert_allclose(logprob, reference.values.numpy(), rtol=1e-5, atol=1e-5)


def test_the_decoder_follows_the_model_kind() -> None:
    assert greedy_decoder("ctc", 33, 10) == CtcGreedy(33)
    weights = RnntHead(RnntHeadConfig(4, 1, 6, 5, 3)).search_weights()
    decoder = greedy_decoder("rnnt", 2, 7, weights)
    assert isinstance(decoder, RnntGreedy)
    assert (decoder.blank_id, decoder.max_symbols_per_step) == (2, 7)
    with pytest.raises(ValueError, match="head's weights"):
        greedy_decoder("rnnt", 2, 7)
    with pytest.raises(ValueError, match="unknown model kind"):
        greedy_decoder("tdt", 2, 7)
