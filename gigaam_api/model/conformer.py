"""The Conformer encoder (docs/gigaam.md §5.2–§5.5): 4× subsampling, macaron layers, channels
first.

Shapes: B batch, M mel bands, T mel frames, T' = ceil(T / 4) encoder frames, d model width.
Module names mirror the official state_dict (`pre_encode.conv.0`, `layers.{i}.self_attn`, ...);
nothing here knows about checkpoints, heads or decoding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gigaam_api.model.attention import (
    RelPositionMultiHeadAttention,
    RotaryEmbedding,
    RotaryMultiHeadAttention,
    relative_sinusoids,
)
from gigaam_api.model.config import EncoderConfig


def _time_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """[B] lengths → [B, frames] bool, True on valid frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


class PointwiseConv1d(nn.Conv1d):
    """A kernel-1 Conv1d (official weight [out, in, 1]) applied channel-last as a matrix product.

    [B, T, in] → [B, T, out]. The same numbers as the convolution, but torch runs it as a GEMM
    without transposes and an exported graph gets a MatMul, which int8 quantization covers
    (ONNX Runtime quantizes MatMul, not Conv; see D-043).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight[:, :, 0], self.bias)


class Subsampling(nn.Module):
    """Stride-2 convolutions with ReLU (conv1d: v3; conv2d + Linear: v1/v2).

    Frames past each sample's valid length are zeroed before the first conv and after every conv,
    so a sample sees the same zeros in a padded batch as alone (upstream fix #75).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.two_d = config.subsampling == "conv2d"
        stages = int(math.log2(config.subsampling_factor))
        self.kernel = config.subs_kernel_size
        self.padding = (self.kernel - 1) // 2
        layers: list[nn.Module] = []
        channels = 1 if self.two_d else config.feat_in
        for _ in range(stages):
            if self.two_d:
                layers.append(nn.Conv2d(channels, config.d_model, self.kernel, 2, self.padding))
            else:
                layers.append(nn.Conv1d(channels, config.d_model, self.kernel, 2, self.padding))
            layers.append(nn.ReLU())
            channels = config.d_model
        self.conv = nn.Sequential(*layers)
        if self.two_d:
            freq = config.feat_in
            for _ in range(stages):
                freq = (freq + 2 * self.padding - self.kernel) // 2 + 1
            self.out = nn.Linear(config.d_model * freq, config.d_model)

    def stage_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """One stride-2 stage: L → ⌊(L + 2p − k) / 2⌋ + 1, kept ≥ 0."""
        shrunk = torch.div(lengths + 2 * self.padding - self.kernel, 2, rounding_mode="floor") + 1
        return shrunk.clamp(min=0)

    def _masked(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        valid = _time_mask(lengths, x.shape[2])
        shape = (x.shape[0], 1, x.shape[2], 1) if self.two_d else (x.shape[0], 1, x.shape[2])
        return x * valid.view(shape).to(x.dtype)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, M, T] features, [B] frames → ([B, T', d], [B] encoder frames)."""
        x = features.transpose(1, 2).unsqueeze(1) if self.two_d else features  # [B, 1, T, M]
        x = self._masked(x, lengths)
        for module in self.conv:
            x = module(x)
            if not isinstance(module, nn.ReLU):  # a conv: re-mask at its output length
                lengths = self.stage_lengths(lengths)
                x = self._masked(x, lengths)
        if self.two_d:
            batch, channels, frames, freq = x.shape  # flatten channel-major: index = c·freq + f
            out: torch.Tensor = self.out(x.transpose(1, 2).reshape(batch, frames, channels * freq))
            return out, lengths
        return x.transpose(1, 2), lengths


class FeedForward(nn.Module):
    """Linear → SiLU → Linear, [B, T, d] → [B, T, d]."""

    def __init__(self, d_model: int, d_ff: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, d_ff)
        self.activation = nn.SiLU()
        self.linear2 = nn.Linear(d_ff, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear2(self.activation(self.linear1(x)))
        return out


class ConvolutionModule(nn.Module):
    """Pointwise → GLU → (zero padding) → depthwise → norm → SiLU → pointwise; [B, T, d]."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        d, kernel = config.d_model, config.conv_kernel_size
        self.layer_norm = config.conv_norm_type == "layer_norm"
        self.pointwise_conv1 = PointwiseConv1d(d, 2 * d)
        self.depthwise_conv = nn.Conv1d(d, d, kernel, padding=(kernel - 1) // 2, groups=d)
        # Upstream names the norm `batch_norm` whichever kind it is.
        self.batch_norm: nn.Module = nn.LayerNorm(d) if self.layer_norm else nn.BatchNorm1d(d)
        self.activation = nn.SiLU()
        self.pointwise_conv2 = PointwiseConv1d(d, d)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, T, d], valid [B, T] bool → [B, T, d]."""
        y = nn.functional.glu(self.pointwise_conv1(x), dim=-1)  # [B, T, d]
        y = y * valid[:, :, None].to(y.dtype)  # padded frames must not leak through the kernel
        y = self.depthwise_conv(y.transpose(1, 2))  # [B, d, T]
        if self.layer_norm:
            y = self.batch_norm(y.transpose(1, 2))
        else:
            y = self.batch_norm(y).transpose(1, 2)
        out: torch.Tensor = self.pointwise_conv2(self.activation(y))
        return out


class ConformerLayer(nn.Module):
    """½FF → MHSA → Conv → ½FF → LayerNorm, each a pre-norm residual."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        d, d_ff = config.d_model, config.d_model * config.ff_expansion_factor
        self.norm_feed_forward1 = nn.LayerNorm(d)
        self.feed_forward1 = FeedForward(d, d_ff)
        self.norm_conv = nn.LayerNorm(d)
        self.conv = ConvolutionModule(config)
        self.norm_self_att = nn.LayerNorm(d)
        self.self_attn: RotaryMultiHeadAttention | RelPositionMultiHeadAttention
        if config.self_attention_model == "rotary":
            self.self_attn = RotaryMultiHeadAttention(d, config.n_heads)
        else:
            self.self_attn = RelPositionMultiHeadAttention(d, config.n_heads)
        self.norm_feed_forward2 = nn.LayerNorm(d)
        self.feed_forward2 = FeedForward(d, d_ff)
        self.norm_out = nn.LayerNorm(d)

    def forward(
        self,
        x: torch.Tensor,
        positions: tuple[torch.Tensor, torch.Tensor] | torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """x [B, T, d]; positions: rotary (cos, sin) or rel_pos table; valid [B, T]."""
        x = x + 0.5 * self.feed_forward1(self.norm_feed_forward1(x))
        x = x + self.self_attn(self.norm_self_att(x), positions, valid)
        x = x + self.conv(self.norm_conv(x), valid)
        x = x + 0.5 * self.feed_forward2(self.norm_feed_forward2(x))
        out: torch.Tensor = self.norm_out(x)
        return out


class ConformerEncoder(nn.Module):
    """Log-mel features → encoder states (channel-first, as upstream returns them)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.pre_encode = Subsampling(config)
        self.pos_enc: RotaryEmbedding | None = None
        if config.self_attention_model == "rotary":
            d_k = config.d_model // config.n_heads
            # Upstream passes pos_emb_max_len as the RoPE base (5000).
            self.pos_enc = RotaryEmbedding(d_k, config.pos_emb_max_len)
        self.layers = nn.ModuleList(ConformerLayer(config) for _ in range(config.n_layers))

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, M, T] features, [B] frames → ([B, d, T'] encoded, [B] int64 encoder frames).

        Frames past a sample's length hold values that never reach its valid frames.
        """
        x, lengths = self.pre_encode(features, lengths)
        frames = x.shape[1]
        valid = _time_mask(lengths, frames)
        # Positions follow the traced frame count, so an exported graph fits every length.
        steps = torch.arange(frames, dtype=torch.float32, device=x.device)
        positions: tuple[torch.Tensor, torch.Tensor] | torch.Tensor
        if self.pos_enc is not None:
            positions = self.pos_enc(steps)
        else:
            positions = relative_sinusoids(steps, self.config.d_model).to(x.dtype)
        for layer in self.layers:
            x = layer(x, positions, valid)
        return x.transpose(1, 2), lengths
