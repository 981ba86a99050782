"""The ONNX Runtime engine against the torch engine on every family, the exported graph on every
length and padding pattern, the int8 graph's operators, and a serving path without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto

from gigaam_api.engines.base import Engine, Waveform
from gigaam_api.engines.onnx import OnnxEngine
from gigaam_api.engines.onnx_cache import GRAPH_FILE, load_manifest
from gigaam_api.engines.pytorch import TorchEngine
from gigaam_api.types import SAMPLE_RATE
from testkit.checkpoints import FAMILIES
from tests.unit.engines.conftest import INT8_FAMILIES, tokenizer_of

WORD_TIME_TOLERANCE_S = 0.001


def _waveform(seconds: float, seed: int) -> Waveform:
    rng = np.random.default_rng(seed)
    samples = int(seconds * SAMPLE_RATE)
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0.0, 12.0 * seconds, samples))
    return (rng.normal(0.0, 0.1, samples) * envelope).astype(np.float32)


WAVES = [_waveform(2.3, 1), _waveform(1.1, 2), _waveform(3.05, 3), _waveform(0.45, 4)]


@pytest.fixture(scope="module")
def torch_engines(tiny_checkpoints: dict[str, Path]) -> dict[str, TorchEngine]:
    return {
        family: TorchEngine.from_files(path, tokenizer_of(path), model_id=family, device="cpu")
        for family, path in tiny_checkpoints.items()
    }


@pytest.fixture(scope="module")
def onnx_engines(fp32_exports: dict[str, Path]) -> dict[str, OnnxEngine]:
    return {family: OnnxEngine(directory) for family, directory in fp32_exports.items()}


def test_engine_satisfies_the_engine_protocol(onnx_engines: dict[str, OnnxEngine]) -> None:
    engine: Engine = onnx_engines["v3_ctc"]
    assert (engine.model_id, engine.device) == ("v3_ctc", "cpu")


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_a_cpu_engine_runs_a_batch_one_waveform_at_a_time(
    runtime: str,
    torch_engines: dict[str, TorchEngine],
    onnx_engines: dict[str, OnnxEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = (onnx_engines if runtime == "onnx" else torch_engines)["v3_ctc"]
    one_by_one = [engine.transcribe_batch([wave])[0] for wave in WAVES]
    shapes: list[tuple[int, ...]] = []
    run = engine._run

    def recording_run(batch: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shapes.append(batch.shape)
        return run(batch, lengths)

    monkeypatch.setattr(engine, "_run", recording_run)
    assert engine.transcribe_batch(WAVES) == one_by_one
    assert shapes == [(1, wave.shape[0]) for wave in WAVES]


@pytest.mark.parametrize("family", FAMILIES)
def test_fp32_gives_the_torch_engines_text_and_word_times(
    family: str, torch_engines: dict[str, TorchEngine], onnx_engines: dict[str, OnnxEngine]
) -> None:
    for inputs in [WAVES, *([wave] for wave in WAVES)]:  # a padded batch, then one by one
        expected = torch_engines[family].transcribe_batch(inputs)
        results = onnx_engines[family].transcribe_batch(inputs)
        for got, want in zip(results, expected, strict=True):
            assert got.text == want.text
            assert got.text  # random weights still emit tokens
            assert [w.text for w in got.words] == [w.text for w in want.words]
            for a, b in zip(got.words, want.words, strict=True):
                assert abs(a.start - b.start) <= WORD_TIME_TOLERANCE_S
                assert abs(a.end - b.end) <= WORD_TIME_TOLERANCE_S
            assert got.avg_logprob == pytest.approx(want.avg_logprob, abs=1e-4)


def _batch(lengths: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    batch = np.zeros((len(lengths), max(lengths)), dtype=np.float32)
    for row, length in enumerate(lengths):
        batch[row, :length] = rng.normal(0.0, 0.1, length)
    return batch, np.array(lengths, dtype=np.int64)


PADDING_PATTERNS = {
    "one sample": [16_000],
    "no padding": [48_000, 48_000, 48_000],
    "past the traced length": [30 * SAMPLE_RATE, 7 * SAMPLE_RATE],  # traced with 2 s and 1.5 s
    "ragged": [5_000, 100_000, 33_333, 400],
    "a window only": [320, 400],
}


@pytest.mark.parametrize("family", ["v1_rnnt", "v2_ctc", "v3_ctc", "v3_e2e_rnnt"])
@pytest.mark.parametrize("pattern", PADDING_PATTERNS)
def test_exported_graph_equals_the_network_for_every_length_and_padding(
    family: str,
    pattern: str,
    torch_engines: dict[str, TorchEngine],
    fp32_exports: dict[str, Path],
) -> None:
    session = onnxruntime.InferenceSession(str(fp32_exports[family] / GRAPH_FILE))
    batch, lengths = _batch(PADDING_PATTERNS[pattern], seed=len(pattern))
    outputs, frames = session.run(None, {"waveforms": batch, "lengths": lengths})
    with torch.inference_mode():
        expected, expected_frames = torch_engines[family].network(
            torch.from_numpy(batch), torch.from_numpy(lengths)
        )
    assert frames.tolist() == expected_frames.tolist()
    assert outputs.shape == tuple(expected.shape)
    valid = np.arange(outputs.shape[1])[None, :] < frames[:, None]
    np.testing.assert_allclose(outputs[valid], expected.numpy()[valid], rtol=1e-4, atol=1e-4)


def test_exported_graph_runs_past_5000_encoder_frames(
    onnx_engines: dict[str, OnnxEngine], torch_engines: dict[str, TorchEngine]
) -> None:
    wave = _waveform(201.0, 7)
    outputs, frames = onnx_engines["v3_ctc"].frame_outputs([wave])
    expected, _ = torch_engines["v3_ctc"].frame_outputs([wave])
    assert frames.tolist() == [5025]
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------- int8


def _weight_matmuls(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    constants = {initializer.name for initializer in graph.initializer}
    return [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants]


@pytest.mark.parametrize("family", INT8_FAMILIES)
def test_int8_graph_quantizes_every_weight_matmul_per_channel_and_nothing_else(
    family: str, fp32_exports: dict[str, Path], int8_exports: dict[str, Path]
) -> None:
    fp32 = onnx.load(str(fp32_exports[family] / GRAPH_FILE)).graph
    int8 = onnx.load(str(int8_exports[family] / GRAPH_FILE)).graph
    ops = [node.op_type for node in int8.node]
    assert "ConvInteger" not in ops and "QLinearConv" not in ops
    assert not [i.name for i in int8.initializer if i.data_type == TensorProto.UINT8]
    weight_matmuls = _weight_matmuls(fp32)
    encoder = [n for n in weight_matmuls if not n.name.startswith("/preprocessor/")]
    assert len(encoder) >= 8 * 2  # per layer: 4 feed-forward + 4 attention projections
    assert [n.name for n in _weight_matmuls(int8)] == [
        n.name for n in weight_matmuls if n.name.startswith("/preprocessor/")
    ]  # only the mel filterbank keeps a float weight
    quantized = [n for n in int8.node if n.op_type == "MatMulInteger"]
    assert len(quantized) == len(encoder)
    int8_weights = {i.name: i for i in int8.initializer if i.data_type == TensorProto.INT8}
    for node in quantized:
        weight = int8_weights[node.input[1]]
        zero_point = int8_weights[node.input[3]]
        assert zero_point.dims == [weight.dims[1]]  # one zero point (and scale) per column
    # the attention score products (activation × activation) stay fp32 MatMuls
    assert ops.count("MatMul") == len(_weight_matmuls(int8)) + (
        sum(1 for n in fp32.node if n.op_type == "MatMul") - len(weight_matmuls)
    )
    # depthwise, subsampling (v3 conv1d / v1 conv2d) and the DFT stay float convolutions
    assert ops.count("Conv") == sum(1 for n in fp32.node if n.op_type == "Conv") > 0
    assert load_manifest(int8_exports[family]).precision == "int8"


@pytest.mark.parametrize("family", INT8_FAMILIES)
def test_int8_frame_outputs_stay_close_to_fp32(
    family: str, fp32_exports: dict[str, Path], int8_exports: dict[str, Path]
) -> None:
    fp32, int8 = OnnxEngine(fp32_exports[family]), OnnxEngine(int8_exports[family])
    expected, frames = fp32.frame_outputs(WAVES)
    got, int8_frames = int8.frame_outputs(WAVES)
    assert int8_frames.tolist() == frames.tolist()
    valid = np.arange(got.shape[1])[None, :] < frames[:, None]
    error = np.linalg.norm(got[valid] - expected[valid]) / np.linalg.norm(expected[valid])
    assert error < 0.05  # measured 0.003-0.02 on these random-weight models
    assert all(result.text for result in int8.transcribe_batch(WAVES))


# ----------------------------------------------------------------------------- without torch

_NO_TORCH_ENGINE = """
import json, sys
from pathlib import Path
import numpy as np
from gigaam_api.engines.onnx import OnnxEngine
engine = OnnxEngine(Path(sys.argv[1]), num_threads=1)
wave = np.load(sys.argv[2])
[result] = engine.transcribe_batch([wave])
heavy = sorted(m for m in ("torch", "gigaam_api.model.gigaam", "onnx") if m in sys.modules)
print(json.dumps({"text": result.text, "loaded": heavy}))
"""


@pytest.mark.parametrize("family", ["v3_ctc", "v3_e2e_rnnt"])
def test_the_onnx_engine_loads_and_transcribes_without_importing_torch(
    family: str,
    fp32_exports: dict[str, Path],
    tmp_path: Path,
    torch_engines: dict[str, TorchEngine],
) -> None:
    wave = tmp_path / "wave.npy"
    np.save(wave, WAVES[0])
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_ENGINE, str(fp32_exports[family]), str(wave)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert report["loaded"] == []
    assert report["text"] == torch_engines[family].transcribe_batch([WAVES[0]])[0].text
