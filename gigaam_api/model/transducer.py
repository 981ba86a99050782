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

    Implements decoding.RnntNetwork. The embedding and the first layer's input weights are folded
    into one table of input gates per label ([C + 1, 4P]; the extra row is "no label", a zero
    input), so a step costs one [N, P] × [P, 4P] product per layer.
    """

    def __init__(self, weights: Mapping[str, npt.NDArray[np.floating]]) -> None:
        def array(name: str) -> FloatArray:
            if name not in weights:
                raise ValueError(f"the RNN-T weights lack {name!r}")
            return np.ascontiguousarray(weights[name], dtype=np.float32)

        embed = array("decoder.embed.weight")  # [C, P]
        self.num_classes, self.hidden = int(embed.shape[0]), int(embed.shape[1])
        self.layers = sum(1 for name in weights if name.startswith("decoder.lstm.weight_ih_l"))
        if self.layers == 0:
            raise ValueError("the RNN-T weights hold no LSTM layer")
        inputs = np.vstack((embed, np.zeros((1, self.hidden), dtype=np.float32)))
        self._input_weights: list[FloatArray] = []
        self._recurrent_weights: list[FloatArray] = []
        self._biases: list[FloatArray] = []
        for layer in range(self.layers):
            suffix = f"_l{layer}"
            self._input_weights.append(array("decoder.lstm.weight_ih" + suffix).T.copy())
            self._recurrent_weights.append(array("decoder.lstm.weight_hh" + suffix).T.copy())
            self._biases.append(
                array("decoder.lstm.bias_ih" + suffix) + array("decoder.lstm.bias_hh" + suffix)
            )
        self._label_gates: FloatArray = inputs @ self._input_weights[0] + self._biases[0]
        self._pred_weight = array("joint.pred.weight").T.copy()  # [P, J]
        self._pred_bias = array("joint.pred.bias")
        self._out_weight = array("joint.joint_net.1.weight").T.copy()  # [J, C]
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
        layer_input: FloatArray | None = None
        for layer in range(self.layers):
            gates = h[layer] @ self._recurrent_weights[layer]
            if layer_input is None:
                gates += self._label_gates[labels]
            else:
                gates += layer_input @ self._input_weights[layer] + self._biases[layer]
            i, f, g, o = np.split(gates, 4, axis=1)  # PyTorch's gate order
            new_c[layer] = _sigmoid(f) * c[layer] + _sigmoid(i) * np.tanh(g)
            new_h[layer] = _sigmoid(o) * np.tanh(new_c[layer])
            layer_input = new_h[layer]
        projected: FloatArray = new_h[-1] @ self._pred_weight + self._pred_bias
        return projected, (new_h, new_c)

    def joint_best(
        self, enc_projected: FloatArray, pred_projected: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        """[N, J] + [N, J] → the most likely class per row [N] and its log-probability [N]."""
        hidden = np.maximum(enc_projected + pred_projected, 0.0)
        logits = hidden @ self._out_weight + self._out_bias  # [N, C]
        best = logits.argmax(axis=1)
        top = logits[np.arange(logits.shape[0]), best]
        log_norm = np.log(np.exp(logits - top[:, None]).sum(axis=1))
        logprob: FloatArray = (-log_norm).astype(np.float32)
        return best.astype(np.int64), logprob
