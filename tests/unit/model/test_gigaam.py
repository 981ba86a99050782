"""The torch engine on small official-format checkpoints of every family (random weights)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from gigaam_api.engines.base import Engine, Waveform
from gigaam_api.engines.pytorch import TorchEngine
from gigaam_api.model.checkpoint import load_checkpoint
from gigaam_api.model.gigaam import GigaAM
from gigaam_api.types import SAMPLE_RATE
from testkit.checkpoints import FAMILIES, tokenizer_path_for

SILENT_TAIL_SAMPLES = 1600
"""v1/v2 reflect-pad 200 samples at the end (docs/gigaam.md §9); with a silent tail longer than
that, a sample sees the same zeros alone as inside a zero-padded batch, so results are exact."""


def _tokenizer(checkpoint: Path) -> Path | None:
    path = tokenizer_path_for(checkpoint)
    return path if path.exists() else None


@pytest.fixture(scope="module")
def engines(tiny_checkpoints: dict[str, Path]) -> dict[str, TorchEngine]:
    return {
        family: TorchEngine.from_files(path, _tokenizer(path), model_id=family, device="cpu")
        for family, path in tiny_checkpoints.items()
    }


def _waveform(seconds: float, seed: int) -> Waveform:
    rng = np.random.default_rng(seed)
    samples = int(seconds * SAMPLE_RATE)
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0.0, 12.0 * seconds, samples))
    wave = (rng.normal(0.0, 0.1, samples) * envelope).astype(np.float32)
    wave[-SILENT_TAIL_SAMPLES:] = 0.0
    return wave


WAVES = [_waveform(2.3, 1), _waveform(1.1, 2), _waveform(3.05, 3), _waveform(0.45, 4)]


def test_engine_satisfies_the_engine_protocol(engines: dict[str, TorchEngine]) -> None:
    engine: Engine = engines["v3_ctc"]
    assert engine.model_id == "v3_ctc"
    assert engine.device == "cpu"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_loads_strictly_in_fp32_and_transcribes(
    family: str, engines: dict[str, TorchEngine], tiny_checkpoints: dict[str, Path]
) -> None:
    engine = engines[family]
    stored = load_checkpoint(tiny_checkpoints[family], GigaAM).network.state_dict()
    loaded = engine.network.state_dict()
    assert sorted(loaded) == sorted(stored)
    for key, value in stored.items():
        assert loaded[key].dtype == value.dtype, key
        assert torch.equal(loaded[key], value), key
    assert all(p.dtype == torch.float32 for p in engine.network.parameters())
    [result] = engine.transcribe_batch([WAVES[0]])
    tokens = engine.decoder.decode(*engine.frame_outputs([WAVES[0]]))[0]
    assert result.text == engine.tokenizer.decode(tokens.token_ids).strip()
    assert result.text  # random weights still emit tokens
    assert result.avg_logprob == pytest.approx(tokens.avg_logprob)
    assert result.avg_logprob < 0.0


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_equals_one_by_one(family: str, engines: dict[str, TorchEngine]) -> None:
    engine = engines[family]
    batched = engine.transcribe_batch(WAVES)
    alone = [engine.transcribe_batch([wave])[0] for wave in WAVES]
    for together, single in zip(batched, alone, strict=True):
        assert together.text == single.text
        assert [w.text for w in together.words] == [w.text for w in single.words]
        for a, b in zip(together.words, single.words, strict=True):
            assert a.start == pytest.approx(b.start) and a.end == pytest.approx(b.end)
        assert together.avg_logprob == pytest.approx(single.avg_logprob, abs=1e-4)


@pytest.mark.parametrize("family", ["v1_ctc", "v2_rnnt"])
def test_centered_families_differ_only_near_the_end_without_a_silent_tail(
    family: str, engines: dict[str, TorchEngine]
) -> None:
    """Facts §10.1 item 2: alone the STFT reflects the signal, in a batch it sees zeros."""
    rng = np.random.default_rng(5)
    long = rng.normal(0.0, 0.1, 3 * SAMPLE_RATE).astype(np.float32)
    short = rng.normal(0.0, 0.1, SAMPLE_RATE).astype(np.float32)
    encoded, lengths = engines[family].encode([long, short])
    alone, alone_lengths = engines[family].encode([short])
    frames = int(alone_lengths[0])
    assert int(lengths[1]) == frames
    edge = (encoded[1, :, frames - 1] - alone[0, :, frames - 1]).abs().max()
    assert float(edge) > 1e-4  # the documented difference exists; the longest row is exact
    torch.testing.assert_close(encoded[0, :, :], engines[family].encode([long])[0][0])


def _letters(text: str) -> str:
    """Text without whitespace and U+FFFD: random byte-fallback pieces may split a character
    across words, which decodes differently per word than for the whole text."""
    return "".join(text.split()).replace("\ufffd", "")


@pytest.mark.parametrize("family", FAMILIES)
def test_word_timestamps_are_ordered_and_inside_the_audio(
    family: str, engines: dict[str, TorchEngine]
) -> None:
    shift = None
    for wave, result in zip(WAVES, engines[family].transcribe_batch(WAVES), strict=True):
        duration = len(wave) / SAMPLE_RATE
        encoded_frames = int(engines[family].encode([wave])[1][0])
        shift = duration / encoded_frames
        assert result.words
        assert _letters(" ".join(w.text for w in result.words)) == _letters(result.text)
        for word in result.words:
            assert 0.0 <= word.start < word.end <= duration + 1e-9
        for previous, current in itertools.pairwise(result.words):
            assert previous.start <= current.start and previous.end <= current.end
            if "ctc" in family:
                assert previous.end <= current.start + 1e-9
            else:
                # RNN-T may emit several words on one frame; upstream then overlaps by a frame.
                assert previous.end <= current.start + shift + 1e-9
    assert shift is not None


def test_word_timestamps_can_be_switched_off(engines: dict[str, TorchEngine]) -> None:
    [result] = engines["v3_e2e_ctc"].transcribe_batch([WAVES[0]], word_timestamps=False)
    assert result.text and result.words == ()


@pytest.mark.parametrize("family", ["v1_ctc", "v3_ctc", "v3_e2e_rnnt"])
def test_empty_and_shorter_than_a_window_inputs_give_empty_text(
    family: str, engines: dict[str, TorchEngine]
) -> None:
    short = [np.zeros(n, dtype=np.float32) + 0.3 for n in (0, 100, 319)]
    results = engines[family].transcribe_batch([*short, WAVES[1]])
    assert [r.text for r in results[:3]] == ["", "", ""]
    assert [r.words for r in results[:3]] == [(), (), ()]
    assert results[3] == engines[family].transcribe_batch([WAVES[1]])[0]
    assert engines[family].transcribe_batch([]) == []
    _, lengths = engines[family].encode(short)
    # centred STFT (v1) gets a frame from 100 samples; the engine still calls it too short
    assert lengths.tolist() == ([0, 0, 0] if family.startswith("v3") else [0, 1, 1])


def test_input_longer_than_5000_encoder_frames_runs(engines: dict[str, TorchEngine]) -> None:
    engine = engines["v3_ctc"]
    wave = np.random.default_rng(6).normal(0.0, 0.1, 201 * SAMPLE_RATE).astype(np.float32)
    [result] = engine.transcribe_batch([wave])
    _, lengths = engine.encode([wave])
    assert int(lengths[0]) == 5025 > 5000
    assert result.text and result.words[-1].end <= 201.0


def test_encode_and_frame_output_shapes(engines: dict[str, TorchEngine]) -> None:
    engine = engines["v3_ctc"]
    encoded, lengths = engine.encode(WAVES[:2])
    assert encoded.shape == (2, 32, int(lengths.max()))
    assert lengths.tolist() == [(((len(w) - 320) // 160 + 1) + 3) // 4 for w in WAVES[:2]]
    log_probs, lp_lengths = engine.frame_outputs(WAVES[:2])
    assert log_probs.shape == (2, int(lengths.max()), 34)
    assert lp_lengths.tolist() == lengths.tolist()
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)
    projected, _ = engines["v3_rnnt"].frame_outputs(WAVES[:1])
    assert projected.shape[2] == 24  # RNN-T: encoder frames in the 24-wide joint space
    with pytest.raises(ValueError, match="1-D"):
        engine.transcribe_batch([np.zeros((2, 400), dtype=np.float32)])


def test_rotary_table_survives_inference_mode_then_autograd(
    engines: dict[str, TorchEngine],
) -> None:
    engine = engines["v3_ctc"]
    engine.transcribe_batch(WAVES[:1])
    wave = torch.from_numpy(WAVES[0])[None]
    encoded, _ = engine.network(wave, torch.tensor([wave.shape[1]]))
    assert encoded.requires_grad


def test_quantize_int8_runs_with_finite_output(tiny_checkpoints: dict[str, Path]) -> None:
    path = tiny_checkpoints["v3_rnnt"]
    engine = TorchEngine.from_files(path, None, model_id="q", device="cpu", quantize_int8=True)
    modules = list(engine.network.encoder.modules())
    assert not any(type(m) is torch.nn.Linear for m in modules)
    quantized = [
        m for m in modules if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")
    ]
    assert len(quantized) == 2 * 8  # per layer: 4 feed-forward + 4 attention projections
    encoded, _ = engine.encode(WAVES[:2])
    assert bool(torch.isfinite(encoded).all())
    [result] = engine.transcribe_batch(WAVES[:1])
    assert result.text and np.isfinite(result.avg_logprob)


def test_num_threads_is_set_once_at_load(tiny_checkpoints: dict[str, Path]) -> None:
    before = torch.get_num_threads()
    try:
        TorchEngine.from_files(tiny_checkpoints["v3_ctc"], None, model_id="t", num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
