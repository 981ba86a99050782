"""Greedy CTC collapse and RNN-T search on hand-made scores (a scripted RNN-T test double)."""

from __future__ import annotations

import pytest
import torch

from gigaam_api.model.decoding import DecodedTokens, LstmState, ctc_greedy, rnnt_greedy

BLANK = 3
CLASSES = 4


def _log_probs(rows: list[list[int]]) -> torch.Tensor:
    """Label sequences → [B, T, C] log-probs whose argmax is that label (0.9 probability)."""
    frames = max(len(row) for row in rows)
    probs = torch.full((len(rows), frames, CLASSES), 0.1 / (CLASSES - 1))
    for b, row in enumerate(rows):
        for t in range(frames):
            probs[b, t, row[t] if t < len(row) else BLANK] = 0.9
    return probs.log()


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
    [result] = ctc_greedy(_log_probs([labels]), torch.tensor([length]), BLANK)
    assert result.token_ids == ids
    assert result.frames == frames
    assert len(result.logprobs) == len(ids)
    assert all(abs(logprob - torch.tensor(0.9).log().item()) < 1e-6 for logprob in result.logprobs)


def test_ctc_greedy_rows_are_independent() -> None:
    rows = [[0, 3, 1, 1], [2, 2, 3, 3]]
    batched = ctc_greedy(_log_probs(rows), torch.tensor([4, 2]), BLANK)
    alone = [
        ctc_greedy(_log_probs([row]), torch.tensor([n]), BLANK)[0]
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

    def __init__(self, scripts: list[list[tuple[int, int]]]) -> None:
        self.scripts = scripts
        self.calls: list[tuple[list[int], list[bool]]] = []

    def project_encoder(self, encoded: torch.Tensor) -> torch.Tensor:
        return encoded

    def initial_state(self, batch: int, device: torch.device) -> LstmState:
        return torch.zeros(1, batch, 1, device=device), torch.zeros(1, batch, 1, device=device)

    def predict(
        self, labels: torch.Tensor, has_label: torch.Tensor, state: LstmState
    ) -> tuple[torch.Tensor, LstmState]:
        self.calls.append((labels.tolist(), has_label.tolist()))
        count = state[0] + has_label.float()[None, :, None]
        pred = torch.stack((count[0, :, 0], torch.where(has_label, labels, -1).float()), dim=1)
        return pred, (count, state[1])

    def joint_logprobs(
        self, enc_projected: torch.Tensor, pred_projected: torch.Tensor
    ) -> torch.Tensor:
        logits = torch.zeros(enc_projected.shape[0], CLASSES)
        for row in range(enc_projected.shape[0]):
            sample, frame = int(enc_projected[row, 0]), int(enc_projected[row, 1])
            consumed, last = int(pred_projected[row, 0]), int(pred_projected[row, 1])
            script = self.scripts[sample]
            if consumed > 0:  # the predictor has consumed exactly the previous emission
                assert last == script[consumed - 1][1]
            if consumed < len(script) and script[consumed][0] == frame:
                logits[row, script[consumed][1]] = 5.0
            else:
                logits[row, BLANK] = 5.0
        return torch.log_softmax(logits, dim=-1)


def _encoded(samples: list[int], frames: int) -> torch.Tensor:
    """[B, T, 2] holding (sample id, frame index)."""
    grid = torch.zeros(len(samples), frames, 2)
    for b, sample in enumerate(samples):
        grid[b, :, 0] = sample
        grid[b, :, 1] = torch.arange(frames)
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
    [result] = rnnt_greedy(_encoded([0], 4), torch.tensor([length]), network, BLANK, max_symbols)
    assert result.token_ids == ids
    assert result.frames == frames
    # one start step with a zero input, then exactly one predictor step per emitted token
    assert network.calls[0] == ([BLANK], [False])
    assert [labels for labels, _ in network.calls[1:]] == [[token] for token in ids]
    assert all(flags == [True] for _, flags in network.calls[1:])


def test_rnnt_batched_search_equals_per_sample_search() -> None:
    scripts = [[(0, 1), (0, 2), (3, 0)], [(1, 2), (1, 2)], [(0, 0), (2, 1), (2, 1), (2, 0)]]
    lengths = [5, 2, 3]
    network = ScriptedRnnt(scripts)
    batched = rnnt_greedy(_encoded([0, 1, 2], 5), torch.tensor(lengths), network, BLANK, 10)
    alone = [
        rnnt_greedy(_encoded([s], lengths[s]), torch.tensor([lengths[s]]), network, BLANK, 10)[0]
        for s in range(3)
    ]
    assert batched == alone
    assert [r.token_ids for r in batched] == [(1, 2, 0), (2, 2), (0, 1, 1, 0)]
