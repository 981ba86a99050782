"""The log-mel front end (docs/gigaam.md §5.1), from the window and filterbank stored in the
checkpoint.

Module and buffer names mirror the official state_dict (`featurizer.0.spectrogram.window`,
`featurizer.0.mel_scale.fb`); nothing here knows about the encoder or decoding.
"""

from __future__ import annotations

import torch
from torch import nn

from gigaam_api.model.config import FeatureConfig

_LOG_FLOOR = 1e-9
_LOG_CEILING = 1e9


class _Spectrogram(nn.Module):
    """Power spectrogram |STFT|² with the stored window (reflect-centred for v1/v2)."""

    window: torch.Tensor

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.n_fft = config.n_fft
        self.hop_length = config.hop_length
        self.center = config.center
        # Overwritten by the checkpoint's buffer (v3 stores bf16-rounded values).
        self.register_buffer("window", torch.hann_window(config.win_length))

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """[B, N] samples → [B, n_fft/2 + 1, T] power."""
        spectrum = torch.stft(
            waveforms,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.window.shape[0],
            window=self.window,
            center=self.center,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        return spectrum.abs().pow(2.0)


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

    Inputs shorter than one STFT window are zero-padded so the STFT runs; their lengths follow the
    upstream formula clamped at 0, so they produce no encoder frames.
    """

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        self.featurizer = nn.Sequential(_MelSpectrogram(config))

    @property
    def min_samples(self) -> int:
        """The fewest samples the STFT accepts (reflect padding needs more than n_fft/2)."""
        return self.config.n_fft // 2 + 1 if self.config.center else self.config.n_fft

    def output_lengths(self, lengths_samples: torch.Tensor) -> torch.Tensor:
        """[B] int samples → [B] int64 feature frames (docs/gigaam.md §5.1)."""
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
        """[B, N] zero-padded float32 samples, [B] lengths → ([B, M, T] log-mel, [B] frames)."""
        short_by = self.min_samples - waveforms.shape[-1]
        if short_by > 0:
            waveforms = nn.functional.pad(waveforms, (0, short_by))
        mel = self.featurizer(waveforms)
        features = torch.log(mel.clamp(min=_LOG_FLOOR, max=_LOG_CEILING))
        lengths = self.output_lengths(lengths_samples).clamp(max=features.shape[-1])
        return features, lengths
