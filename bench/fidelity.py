"""Sections of bench_engines: the RNN-T greedy loop's share of the encoder time, and int8 against
fp32 on the test fixtures (encoder-output error, text agreement). No WER: random weights."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.common import SAMPLE_RATE
from gigaam_api.engines.network import pad_batch
from gigaam_api.engines.onnx import OnnxEngine
from gigaam_api.engines.onnx_cache import RNNT_WEIGHTS_FILE, export_directories
from gigaam_api.engines.onnx_export import export_graph, export_model, quantize_graph
from gigaam_api.model.decoding import RnntNetwork, rnnt_greedy
from gigaam_api.model.gigaam import GigaAM, load_network
from gigaam_api.model.transducer import FloatArray, IntArray, LstmState, RnntPredictorJoint


def agreement(reference: str, text: str) -> float:
    """1 − (character edit distance / reference length), at least 0."""
    previous = list(range(len(text) + 1))
    for i, a in enumerate(reference, 1):
        current = [i]
        for j, b in enumerate(text, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a != b)))
        previous = current
    return max(0.0, 1.0 - previous[-1] / max(len(reference), 1))


def _best_of(repeats: int, run: object) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - started)
    return best


class _EveryOtherFrame:
    """The real predictor and joint (the same numpy work per step), with the decision scripted:
    one token on every other frame, as a trained model emits characters on speech (batch of 1)."""

    def __init__(self, network: RnntPredictorJoint, blank: int) -> None:
        self.network = network
        self.blank = blank
        self.frame = -1
        self.after_token = False

    @property
    def no_label(self) -> int:
        return self.network.no_label

    def initial_state(self, batch: int) -> LstmState:
        return self.network.initial_state(batch)

    def predict(self, labels: IntArray, state: LstmState) -> tuple[FloatArray, LstmState]:
        self.after_token = True
        return self.network.predict(labels, state)

    def joint_best(
        self, enc_projected: FloatArray, pred_projected: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        best, logprob = self.network.joint_best(enc_projected, pred_projected)
        if self.after_token:  # the second look at a frame that just emitted: blank
            self.after_token = False
            return np.full_like(best, self.blank), logprob
        self.frame += 1
        return np.full_like(best, self.blank if self.frame % 2 else 0), logprob


def decode_share_report(work: Path, threads: int) -> str:
    """The greedy RNN-T loop against the network time of one 20 s chunk, worst and realistic."""
    audio = np.load(work / "clip.npy")
    batch, lengths = pad_batch([audio], 0)
    network_s = {}
    outputs: FloatArray | None = None
    frames: IntArray | None = None
    for precision in ("fp32", "int8"):
        engine = OnnxEngine(
            export_directories(work / "v3_rnnt.ckpt", precision)[0],
            num_threads=threads,
        )
        outputs, frames = engine._run(batch, lengths)
        network_s[precision] = _best_of(3, lambda e=engine: e._run(batch, lengths))
    assert outputs is not None and frames is not None
    directory = export_directories(work / "v3_rnnt.ckpt", "int8")[0]
    with np.load(directory / RNNT_WEIGHTS_FILE) as arrays:
        network = RnntPredictorJoint({name: arrays[name] for name in arrays.files})
    blank = network.num_classes - 1
    rows = []
    searches: list[tuple[str, RnntNetwork]] = [
        ("random weights (worst case)", network),
        ("scripted: one token every other frame", _EveryOtherFrame(network, blank)),
    ]
    for label, searched in searches:
        [tokens] = rnnt_greedy(outputs, frames, searched, blank, 10)
        if isinstance(searched, _EveryOtherFrame):
            searched.frame, searched.after_token = -1, False
        seconds = _best_of(3, lambda s=searched: _search_once(s, outputs, frames, blank))
        rows.append(
            f"| {label} | {len(tokens.token_ids) / int(frames[0]):.2f} | {seconds * 1000:.1f} "
            f"| {seconds / network_s['int8']:.1%} | {seconds / network_s['fp32']:.1%} |"
        )
    return "\n".join(
        [
            f"v3_rnnt greedy loop on one {len(audio) / SAMPLE_RATE:.0f} s chunk "
            f"({int(frames[0])} frames), numpy, batch of one:",
            "| emission | tokens/frame | decoding ms | % of ORT int8 network "
            "| % of ORT fp32 network |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def _search_once(network: RnntNetwork, outputs: FloatArray, frames: IntArray, blank: int) -> None:
    if isinstance(network, _EveryOtherFrame):
        network.frame, network.after_token = -1, False
    rnnt_greedy(outputs, frames, network, blank, 10)


class _Encoder(nn.Module):
    def __init__(self, network: GigaAM) -> None:
        super().__init__()
        self.network = network

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        encoded, _ = self.network.encode(waveforms, lengths)
        return encoded


def _run_encoder(graph: Path, batch: FloatArray, lengths: IntArray) -> FloatArray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(graph))
    encoded: FloatArray = session.run(None, {"waveforms": batch, "lengths": lengths})[0]
    return encoded


def _relative_error(reference: np.ndarray, value: np.ndarray) -> float:
    return float(np.linalg.norm(value - reference) / np.linalg.norm(reference))


def fixtures_report(directory: Path) -> str:
    """int8 against fp32 (both ONNX Runtime) on every small test-fixture model."""
    from testkit.checkpoints import FAMILIES, tokenizer_path_for, write_checkpoint

    rng = np.random.default_rng(0)
    waves = [
        (rng.normal(0.0, 0.1, n) * (0.5 + 0.5 * np.sin(np.linspace(0.0, 30.0, n))))
        .astype(np.float32)
        for n in (36_800, 17_600, 48_800, 7_200)
    ]  # fmt: skip
    batch, lengths = pad_batch(waves, 0)
    rows = []
    for seed, family in enumerate(FAMILIES):
        checkpoint = write_checkpoint(directory / f"{family}.ckpt", family, seed=seed)
        tokenizer = tokenizer_path_for(checkpoint)
        tokenizer_or_none = tokenizer if tokenizer.exists() else None
        engines, encoded = {}, {}
        for precision in ("fp32", "int8"):
            out = directory / f"{family}-{precision}"
            out.mkdir()
            export_model(checkpoint, tokenizer_or_none, out, precision=precision, model_id=family)
            engines[precision] = OnnxEngine(out, num_threads=1)
        encoder_graph = directory / f"{family}-encoder.onnx"
        export_graph(
            _Encoder(load_network(checkpoint, tokenizer_or_none).network),
            (torch.from_numpy(batch), torch.from_numpy(lengths)), encoder_graph,
            input_names=("waveforms", "lengths"), output_names=("encoded",),
            dynamic_axes={"waveforms": {0: "b", 1: "n"}, "lengths": {0: "b"},
                          "encoded": {0: "b", 2: "t"}},
        )  # fmt: skip
        variants = {  # as shipped (mel filterbank fp32), and with the filterbank quantized too
            "int8": lambda name: name.startswith("/preprocessor/"),
            "int8 mel": lambda name: False,
        }
        encoded["fp32"] = _run_encoder(encoder_graph, batch, lengths)
        for variant, keep_fp32 in variants.items():
            quantized = directory / f"{family}-encoder-{variant.replace(' ', '-')}.onnx"
            quantize_graph(encoder_graph, quantized, keep_fp32)
            encoded[variant] = _run_encoder(quantized, batch, lengths)
        frames = engines["fp32"].frame_outputs(waves)[1]
        valid = np.arange(encoded["fp32"].shape[2])[None, :] < frames[:, None]  # [B, T']
        errors = {
            variant: _relative_error(
                encoded["fp32"].transpose(0, 2, 1)[valid],
                encoded[variant].transpose(0, 2, 1)[valid],
            )
            for variant in variants
        }
        texts = {p: [r.text for r in e.transcribe_batch(waves)] for p, e in engines.items()}
        scores = [agreement(a, b) for a, b in zip(texts["fp32"], texts["int8"], strict=True)]
        same = sum(a == b for a, b in zip(texts["fp32"], texts["int8"], strict=True))
        rows.append(
            f"| {family} | {errors['int8']:.4f} | {errors['int8 mel']:.4f} "
            f"| {np.mean(scores):.1%} | {same}/{len(waves)} |"
        )
    return "\n".join(
        [
            "int8 against fp32 on the test fixtures (small random-weight models, 4 clips):",
            "| family | encoder output rel. error | same, mel filterbank quantized too "
            "| text agreement (chars) | identical texts |",
            "|---|---|---|---|---|",
            *rows,
        ]
    )
