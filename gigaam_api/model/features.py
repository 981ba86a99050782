"""The log-mel front end (docs/gigaam.md §5.1), from the window and filterbank stored in the
checkpoint.

The power spectrum is a strided convolution with a windowed DFT basis rather than torch.stft: the
same numbers (float rounding apart), and it exports to ONNX, so one definition of the features
serves both engines. Module and buffer names mirror the official state_dict
(`featurizer.0.spectrogram.window`, `featurizer.0.mel_scale.fb`); nothing here knows about the
encoder or decoding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gigaam_api.model.config import FeatureConfig

_LOG_FLOOR = 1e-9
_LOG_CEILING = 1e9


def _dft_basis(n_fft: int) -> torch.Tensor:
    """[2F, n_fft] rows cos(2πkn/N) then −sin(2πkn/N) for bins k = 0…N/2 (F = N/2 + 1)."""
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float64, device="cpu")[:, None]
    samples = torch.arange(n_fft, dtype=torch.float64, device="cpu")[None, :]
    angles = 2.0 * math.pi * ((bins * samples) % n_fft) / n_fft  # exact phase before the float
    return torch.cat((angles.cos(), -angles.sin())).float()


class _Spectrogram(nn.Module):
    """Power spectrogram |DFT(window · frame)|² (frames reflect-centred for v1/v2)."""

    window: torch.Tensor
    dft: torch.Tensor

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.center = config.center
        # A window shorter than n_fft sits in the middle of the frame, as torch.stft puts it.
        left = (config.n_fft - config.win_length) // 2
        self.window_padding = (left, config.n_fft - config.win_length - left)
        # Overwritten by the checkpoint's buffer (v3 stores bf16-rounded values).
        self.register_buffer("window", torch.hann_window(config.win_length))
        # An explicit device keeps the basis real when the network is built on "meta".
        self.register_buffer("dft", _dft_basis(config.n_fft), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """[B, N] samples (N ≥ n_fft, or > n_fft/2 when centred) → [B, n_fft/2 + 1, T] power."""
        signal = waveforms[:, None, :]  # [B, 1, N]
        if self.center:
            half = self.n_fft // 2
            signal = nn.functional.pad(signal, (half, half), mode="reflect")
        window = self.window
        if any(self.window_padding):
            window = nn.functional.pad(window, self.window_padding)
        kernel = (self.dft * window)[:, None, :]  # [2F, 1, n_fft]
        spectrum = nn.functional.conv1d(signal, kernel, stride=self.hop_length)  # [B, 2F, T]
        real, imaginary = spectrum.chunk(2, dim=1)
        return real * real + imaginary * imaginary


class _MelScale(nn.Module):
    """Projects power bins onto mel bands with the stored [n_fft/2 + 1, n_mels] filterbank."""

    fb: torch.Tensor

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.register_buffer("fb", torch.zeros(config.n_fft // 2 + 1, config.n_mels))

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        """[B, F, T] → [B, n_mels, T]."""
        return torch.matmul(power.transpose(-1, -2), self.fb).transpose(-1, -2)


class _MelSpectrogram(nn.Module):
    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.spectrogram = _Spectrogram(config)
        self.mel_scale = _MelScale(config)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        mel: torch.Tensor = self.mel_scale(self.spectrogram(waveforms))
        return mel


class FeatureExtractor(nn.Module):
    """Waveforms → natural-log mel features and their valid lengths.

    The batch must be at least min_samples wide (callers zero-pad shorter batches); a sample
    shorter than one window gets 0 frames by the upstream length formula clamped at 0.
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        self.featurizer = nn.Sequential(_MelSpectrogram(config))

    @property
    def min_samples(self) -> int:
        """The narrowest batch the front end accepts (reflect padding needs more than n_fft/2)."""
        return self.config.n_fft // 2 + 1 if self.config.center else self.config.n_fft

    def output_lengths(self, lengths_samples: torch.Tensor) -> torch.Tensor:
        """[B] int samples → [B] int64 feature frames (docs/gigaam.md §5.1).

        Never more than the batch's frame count: padding only adds samples past each length.
        """
        hop = self.config.hop_length
        if self.config.center:
            frames = torch.div(lengths_samples, hop, rounding_mode="floor") + 1
        else:
            frames = torch.div(lengths_samples - self.config.win_length, hop, rounding_mode="floor")
            frames = frames + 1
        # A 0-sample input (v1/v2) or one shorter than a window (v3) has no usable frame.
        frames = torch.where(lengths_samples > 0, frames, torch.zeros_like(frames))
        return frames.clamp(min=0).long()

    def forward(
        self, waveforms: torch.Tensor, lengths_samples: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, N ≥ min_samples] zero-padded samples, [B] lengths → ([B, M, T] log-mel, [B])."""
        mel = self.featurizer(waveforms)
        features = torch.log(mel.clamp(min=_LOG_FLOOR, max=_LOG_CEILING))
        return features, self.output_lengths(lengths_samples)
