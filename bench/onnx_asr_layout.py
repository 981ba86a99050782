"""Our network exported into the local-directory layout of the peer runtime onnx-asr (bench only).

onnx-asr computes the log-mel features itself (numpy) and loads, for `gigaam-v3-ctc`,
`v3_ctc[.int8].onnx` (features [B, 64, T], feature_lengths [B] → log_probs [B, T', C]); for
`gigaam-v3-rnnt`, `v3_rnnt_{encoder,decoder,joint}[.int8].onnx` (the encoder returns [B, d, T']
and int32 lengths; the decoder is one LSTM step on a [1, 1] label with h.1/c.1; the joint takes
enc [1, d, 1] and dec [1, P, 1]); plus `v3_vocab.txt` ("token id" per line, ▁ for a space,
<blk> for blank) and `config.json`. These graphs are traced from the same modules as ours with
the same exporter and the same int8 scheme (engines/onnx_export.py), so the comparison is of
runtimes on one network, not of two exports.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn

from gigaam_api.engines.onnx_export import export_graph, quantize_graph
from gigaam_api.model.gigaam import GigaAM
from gigaam_api.model.heads import CtcHead, RnntHead


class _CtcFromFeatures(nn.Module):
    def __init__(self, network: GigaAM) -> None:
        super().__init__()
        self.encoder, self.head = network.encoder, network.head

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        encoded, _ = self.encoder(features, lengths)
        out: torch.Tensor = self.head(encoded)
        return out


class _EncoderFromFeatures(nn.Module):
    def __init__(self, network: GigaAM) -> None:
        super().__init__()
        self.encoder = network.encoder

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        encoded, encoded_lengths = self.encoder(features, lengths)
        return encoded, encoded_lengths.to(torch.int32)


class _DecoderStep(nn.Module):
    def __init__(self, head: RnntHead) -> None:
        super().__init__()
        self.embed, self.lstm = head.decoder.embed, head.decoder.lstm

    def forward(
        self, label: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # the plain lookup: Embedding's padding_idx check reads a traced size as a Python bool
        embedded = nn.functional.embedding(label, self.embed.weight)
        output, (h_next, c_next) = self.lstm(embedded.transpose(0, 1), (h, c))
        return output.transpose(0, 1), h_next, c_next  # dec [1, 1, P]


class _Joint(nn.Module):
    def __init__(self, head: RnntHead) -> None:
        super().__init__()
        self.joint = head.joint

    def forward(self, enc: torch.Tensor, dec: torch.Tensor) -> torch.Tensor:
        hidden = self.joint.enc(enc.transpose(1, 2)) + self.joint.pred(dec.transpose(1, 2))
        logits: torch.Tensor = self.joint.joint_net(hidden)
        return logits[:, :, None, :]  # [1, 1, 1, C]


def _vocabulary_file(path: Path, tokens: tuple[str, ...]) -> None:
    lines = [f"{token.replace(' ', chr(0x2581))} {i}" for i, token in enumerate(tokens)]
    path.write_text("\n".join([*lines, f"<blk> {len(tokens)}"]) + "\n", encoding="utf-8")


def write_onnx_asr_model(network: GigaAM, directory: Path) -> str:
    """Export a v3 char model into `directory` in fp32 and int8; returns the onnx-asr name."""
    config = network.config
    vocabulary = config.decoding.vocabulary
    if vocabulary is None or config.encoder.subsampling != "conv1d":
        raise ValueError("the onnx-asr layout here covers the v3 character models")
    directory.mkdir(parents=True, exist_ok=True)
    _vocabulary_file(directory / "v3_vocab.txt", vocabulary)
    features = torch.randn(2, config.encoder.feat_in, 200)
    lengths = torch.tensor([200, 150])
    feature_axes = {"features": {0: "batch", 2: "frames"}, "feature_lengths": {0: "batch"}}
    keep_all_quantized = lambda name: False  # noqa: E731  (no preprocessor in these graphs)
    if isinstance(network.head, CtcHead):
        name, kind = "v3_ctc", "gigaam-v3-ctc"
        export_graph(
            _CtcFromFeatures(network), (features, lengths), directory / f"{name}.onnx",
            input_names=("features", "feature_lengths"), output_names=("log_probs",),
            dynamic_axes={**feature_axes, "log_probs": {0: "batch", 1: "frames"}},
        )  # fmt: skip
        quantize_graph(
            directory / f"{name}.onnx", directory / f"{name}.int8.onnx", keep_all_quantized
        )
    else:
        assert isinstance(network.head, RnntHead)
        name, kind = "v3_rnnt", "gigaam-v3-rnnt"
        encoder = directory / f"{name}_encoder.onnx"
        export_graph(
            _EncoderFromFeatures(network), (features, lengths), encoder,
            input_names=("audio_signal", "length"), output_names=("encoded", "encoded_len"),
            dynamic_axes={
                "audio_signal": {0: "batch", 2: "frames"}, "length": {0: "batch"},
                "encoded": {0: "batch", 2: "encoded_frames"}, "encoded_len": {0: "batch"},
            },
        )  # fmt: skip
        quantize_graph(encoder, directory / f"{name}_encoder.int8.onnx", keep_all_quantized)
        hidden = config.head.pred_hidden  # type: ignore[union-attr]  # an RNN-T head here
        state = torch.zeros(1, 1, hidden)
        export_graph(
            _DecoderStep(network.head), (torch.zeros(1, 1, dtype=torch.long), state, state),
            directory / f"{name}_decoder.onnx", input_names=("x", "h.1", "c.1"),
            output_names=("dec", "h", "c"), dynamic_axes={},
        )  # fmt: skip
        export_graph(
            _Joint(network.head), (torch.zeros(1, config.encoder.d_model, 1),
                                   torch.zeros(1, hidden, 1)),
            directory / f"{name}_joint.onnx", input_names=("enc", "dec"),
            output_names=("joint",), dynamic_axes={},
        )  # fmt: skip
        for part in ("decoder", "joint"):  # onnx-asr wants every file under the int8 name
            shutil.copyfile(
                directory / f"{name}_{part}.onnx", directory / f"{name}_{part}.int8.onnx"
            )
    settings = {"model_type": kind, "version": "v3", "features_size": config.encoder.feat_in}
    settings["max_tokens_per_step"] = config.decoding.max_symbols_per_step
    (directory / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    return kind
