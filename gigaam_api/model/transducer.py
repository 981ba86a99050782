"""The RNN-T prediction and joint networks in numpy, for the greedy search of both engines.

Built from the head's weights under their official names (`decoder.embed.weight`,
`decoder.lstm.weight_ih_l0`, …, `joint.pred.weight`, `joint.joint_net.1.weight`): from the torch
module at load time, or from the `.npz` an ONNX export writes beside its graph. float32
throughout, as the torch LSTM computes. Knows nothing of torch, encoders or tokenizers.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
LstmState = tuple[FloatArray, FloatArray]
"""(h, c), each [layers, N, P]."""


def _sigmoid(x: FloatArray) -> FloatArray:
    # the tanh form cannot overflow, unlike 1 / (1 + exp(−x)) for large negative x
    result: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return result


class RnntPredictorJoint:
    """One-layer-or-more LSTM predictor plus joint network, stepped by decoding.rnnt_greedy.

    Implements decoding.RnntNetwork. Laid out for a step of few numpy calls (the search makes
    one per emitted token, so their count is its cost): the embedding and the first layer's input
    weights are folded into one table of input gates per label ([C + 1, 4P]; the extra row is "no
    label", a zero input); gate columns are reordered i, f, o, g and the sigmoid gates' weights
    halved, so one tanh over all gates gives σ(x) = (1 + tanh(x / 2)) / 2 for three of them
    (halving is exact in binary floating point).
    """

    def __init__(self, weights: Mapping[str, npt.NDArray[np.floating]]) -> None:
        def array(name: str) -> FloatArray:
            if name not in weights:
                raise ValueError(f"the RNN-T weights lack {name!r}")
            return np.asarray(weights[name], dtype=np.float32)

        embed = array("decoder.embed.weight")  # [C, P]
        self.num_classes, self.hidden = int(embed.shape[0]), int(embed.shape[1])
        self.layers = sum(1 for name in weights if name.startswith("decoder.lstm.weight_ih_l"))
        if self.layers == 0:
            raise ValueError("the RNN-T weights hold no LSTM layer")
        p = self.hidden
        # PyTorch's gate rows are i, f, g, o; here columns i, f, o, g, sigmoid ones halved
        order = np.concatenate(
            [np.arange(0, 2 * p), np.arange(3 * p, 4 * p), np.arange(2 * p, 3 * p)]
        )
        scale = np.concatenate([np.full(3 * p, 0.5), np.ones(p)]).astype(np.float32)

        def gate_columns(matrix: FloatArray) -> FloatArray:  # [4P, in] → [in, 4P]
            return np.ascontiguousarray(matrix[order].T * scale)

        self._input_weights: list[FloatArray] = []
        self._recurrent_weights: list[FloatArray] = []
        self._biases: list[FloatArray] = []
        for layer in range(self.layers):
            suffix = f"_l{layer}"
            self._input_weights.append(gate_columns(array("decoder.lstm.weight_ih" + suffix)))
            self._recurrent_weights.append(gate_columns(array("decoder.lstm.weight_hh" + suffix)))
            bias = array("decoder.lstm.bias_ih" + suffix) + array("decoder.lstm.bias_hh" + suffix)
            self._biases.append(bias[order] * scale)
        inputs = np.vstack((embed, np.zeros((1, p), dtype=np.float32)))
        self._label_gates: FloatArray = inputs @ self._input_weights[0] + self._biases[0]
        self._pred_weight = np.ascontiguousarray(array("joint.pred.weight").T)  # [P, J]
        self._pred_bias = array("joint.pred.bias")
        self._out_weight = np.ascontiguousarray(array("joint.joint_net.1.weight").T)  # [J, C]
        self._out_bias = array("joint.joint_net.1.bias")

    @property
    def no_label(self) -> int:
        """The label index that means "nothing emitted yet" (a zero predictor input)."""
        return self.num_classes

    def initial_state(self, batch: int) -> LstmState:
        zeros = np.zeros((self.layers, batch, self.hidden), dtype=np.float32)
        return zeros, zeros.copy()

    def predict(self, labels: IntArray, state: LstmState) -> tuple[FloatArray, LstmState]:
        """One predictor step on [N] labels (or no_label) → ([N, J] projected output, state)."""
        h, c = state
        new_h = np.empty_like(h)
        new_c = np.empty_like(c)
        p3 = 3 * self.hidden
        for layer in range(self.layers):
            gates = h[layer] @ self._recurrent_weights[layer]
            if layer == 0:
                gates += self._label_gates[labels]
            else:
                gates += new_h[layer - 1] @ self._input_weights[layer] + self._biases[layer]
            np.tanh(gates, out=gates)
            sigmoids = gates[:, :p3] * 0.5 + 0.5  # i, f, o
            p = self.hidden
            cell = new_c[layer]
            np.multiply(sigmoids[:, p : 2 * p], c[layer], out=cell)
            cell += sigmoids[:, :p] * gates[:, p3:]
            np.multiply(sigmoids[:, 2 * p :], np.tanh(cell), out=new_h[layer])
        projected: FloatArray = new_h[-1] @ self._pred_weight
        projected += self._pred_bias
        return projected, (new_h, new_c)

    def joint_best(
        self, enc_projected: FloatArray, pred_projected: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        """[N, J] + [N, J] → the most likely class per row [N] and its log-probability [N]."""
        hidden = enc_projected + pred_projected
        np.maximum(hidden, 0.0, out=hidden)
        logits = hidden @ self._out_weight
        logits += self._out_bias  # [N, C]
        best = logits.argmax(axis=1)
        top = np.take_along_axis(logits, best[:, None], axis=1)
        logits -= top
        np.exp(logits, out=logits)
        logprob: FloatArray = -np.log(logits.sum(axis=1))
        return best, logprob
