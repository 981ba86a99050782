"""Log-mel features against a direct numpy evaluation of docs/gigaam.md §5.1, and the length
rules."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import torch

from gigaam_api.model.config import FeatureConfig
from gigaam_api.model.features import FeatureExtractor

V3 = FeatureConfig(n_fft=320, win_length=320, hop_length=160, center=False)
V1 = FeatureConfig(n_fft=400, win_length=400, hop_length=160, center=True)


def _extractor(config: FeatureConfig, seed: int = 0) -> FeatureExtractor:
    """An extractor whose stored buffers are arbitrary (not the textbook ones), as loaded."""
    generator = torch.Generator().manual_seed(seed)
    extractor = FeatureExtractor(config)
    bins = config.n_fft // 2 + 1
    extractor.load_state_dict(
        {
            "featurizer.0.spectrogram.window": torch.rand(config.win_length, generator=generator),
            "featurizer.0.mel_scale.fb": torch.rand(bins, config.n_mels, generator=generator),
        }
    )
    return extractor


def _numpy_log_mel(
    samples: npt.NDArray[np.float64], extractor: FeatureExtractor
) -> npt.NDArray[np.float64]:
    config = extractor.config
    buffers = extractor.state_dict()
    window = buffers["featurizer.0.spectrogram.window"].double().numpy()
    filterbank = buffers["featurizer.0.mel_scale.fb"].double().numpy()
    if config.center:
        half = config.n_fft // 2
        samples = np.pad(samples, (half, half), mode="reflect")
    count = (len(samples) - config.n_fft) // config.hop_length + 1
    frames = np.stack(
        [
            samples[t * config.hop_length : t * config.hop_length + config.n_fft]
            for t in range(count)
        ]
    )
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # [T, F]
    mel = power @ filterbank  # [T, M]
    log_mel: npt.NDArray[np.float64] = np.log(np.clip(mel, 1e-9, 1e9)).T
    return log_mel


@pytest.mark.parametrize("config", [V3, V1], ids=["v3", "v1"])
def test_log_mel_matches_the_direct_formula_with_stored_buffers(config: FeatureConfig) -> None:
    rng = np.random.default_rng(1)
    samples = rng.normal(0.0, 0.1, 16_000).astype(np.float32)
    extractor = _extractor(config)
    features, lengths = extractor(torch.from_numpy(samples)[None], torch.tensor([16_000]))
    expected = _numpy_log_mel(samples.astype(np.float64), extractor)
    assert features.shape == (1, 64, expected.shape[1])
    assert int(lengths[0]) == expected.shape[1]
    np.testing.assert_allclose(features[0].numpy(), expected, atol=2e-3, rtol=1e-4)


@pytest.mark.parametrize("config", [V3, V1], ids=["v3", "v1"])
def test_dft_convolution_equals_torch_stft(config: FeatureConfig) -> None:
    """The exportable formulation (D-043) against the torch.stft front end it replaced."""
    rng = np.random.default_rng(3)
    envelope = np.sin(np.linspace(0.0, 20.0, 48_000)) ** 2
    samples = (rng.normal(0.0, 0.1, 48_000) * envelope).astype(np.float32)
    samples[20_000:24_000] = 0.0  # digital silence: the log floor
    waveforms = torch.from_numpy(samples)[None]
    extractor = _extractor(config)
    buffers = extractor.state_dict()
    power = (
        torch.stft(
            waveforms,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            win_length=config.win_length,
            window=buffers["featurizer.0.spectrogram.window"],
            center=config.center,
            pad_mode="reflect",
            return_complex=True,
        ).abs()
        ** 2
    )
    mel = torch.matmul(power.transpose(-1, -2), buffers["featurizer.0.mel_scale.fb"])
    expected = torch.log(mel.transpose(-1, -2).clamp(1e-9, 1e9))
    features, _ = extractor(waveforms, torch.tensor([48_000]))
    torch.testing.assert_close(features, expected, rtol=0.0, atol=1e-5)


def test_silence_hits_the_log_floor() -> None:
    features, _ = _extractor(V3)(torch.zeros(1, 3200), torch.tensor([3200]))
    assert torch.allclose(features, torch.full_like(features, float(np.log(1e-9))))


@pytest.mark.parametrize(
    ("config", "samples", "frames"),
    [
        (V3, 180_640, 1128),  # example.wav, docs/gigaam.md §5.1
        (V1, 180_640, 1130),
        (V3, 320, 1),
        (V3, 319, 0),
        (V3, 100, 0),
        (V3, 0, 0),
        (V1, 160, 2),
        (V1, 0, 0),
    ],
)
def test_output_lengths_follow_the_upstream_formula(
    config: FeatureConfig, samples: int, frames: int
) -> None:
    lengths = FeatureExtractor(config).output_lengths(torch.tensor([samples]))
    assert lengths.tolist() == [frames]


@pytest.mark.parametrize("config", [V3, V1], ids=["v3", "v1"])
@pytest.mark.parametrize("samples", [0, 1, 100, 199, 319])
def test_input_shorter_than_a_window_in_a_minimal_batch_has_no_frames_beyond_it(
    config: FeatureConfig, samples: int
) -> None:
    extractor = _extractor(config)
    batch = torch.zeros(1, max(samples, extractor.min_samples))  # as the engines pad it
    features, lengths = extractor(batch, torch.tensor([samples]))
    assert features.shape[1] == 64
    assert 0 <= int(lengths[0]) <= features.shape[2]
    assert bool(torch.isfinite(features).all())


def test_batch_rows_match_single_rows_when_not_centered() -> None:
    rng = np.random.default_rng(2)
    long = torch.from_numpy(rng.normal(0, 0.1, 8000).astype(np.float32))
    short = torch.from_numpy(rng.normal(0, 0.1, 5000).astype(np.float32))
    extractor = _extractor(V3)
    batch = torch.zeros(2, 8000)
    batch[0], batch[1, :5000] = long, short
    features, lengths = extractor(batch, torch.tensor([8000, 5000]))
    alone, alone_lengths = extractor(short[None], torch.tensor([5000]))
    assert int(lengths[1]) == int(alone_lengths[0]) == 30
    torch.testing.assert_close(features[1, :, :30], alone[0])
