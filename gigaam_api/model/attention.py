"""Multi-head self-attention of the Conformer: rotary (v2/v3) and Transformer-XL rel_pos (v1).

Shapes: B batch, T frames, d model width, H heads, d_k = d / H. Padding is handled by masking keys
only and zeroing padded query rows, so no row is ever fully masked (no NaN on any backend). The
mask is always applied, also to a batch without padding: a data-dependent shortcut would be frozen
into an exported graph (see D-041).
Parameter names mirror the official state_dict; nothing here knows about checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Upstream's "custom" path fills masked scores with -10000 before the softmax; any finite value
# this low gives the same probabilities in fp32 and keeps an all-padding row finite.
_MASKED_SCORE = -10000.0


def key_bias(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, T] bool → [B, 1, 1, T] additive score bias: 0 on valid keys, −10000 on padding.

    Additive rather than a boolean mask: exported, a boolean mask costs a Where and an IsNaN
    over every [B, H, T, T] score tensor (about 10 % of the int8 encoder's time); the bias is
    one broadcast Add, with the same probabilities in fp32.
    """
    bias = torch.zeros(valid.shape, dtype=dtype, device=valid.device)
    return bias.masked_fill(~valid, _MASKED_SCORE)[:, None, None, :]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[..., d_k] → concat(−second half, first half) (halves, not interleaved pairs)."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """cos/sin tables of RoPE with base = pos_emb_max_len (5000 upstream, not 10000).

    The table is computed for each call's length (a [T, d_k] outer product, negligible beside
    the encoder): no cached table whose size check an exported graph would freeze, nothing made
    inside an inference_mode call that a later autograd call could trip on.
    """

    inv_freq: torch.Tensor

    def __init__(self, d_k: int, base: float) -> None:
        super().__init__()
        # An explicit device keeps the frequencies real when the network is built on "meta".
        steps = torch.arange(0, d_k, 2, dtype=torch.float32, device="cpu")
        self.register_buffer("inv_freq", 1.0 / (base ** (steps / d_k)), persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[T] float32 positions 0…T−1 → (cos, sin), each [T, d_k] float32."""
        angles = positions[:, None] * self.inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)  # [T, d_k], halves duplicated
        return angles.cos(), angles.sin()


def relative_sinusoids(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Transformer-XL table for relative positions T−1 … −(T−1): [2T − 1, d], sin/cos interleaved.

    positions: [T] float32 0…T−1 (so the table follows the input's length in an exported graph).
    """
    last = positions[-1]
    relative = last - torch.cat((positions, positions[1:] + last))  # T−1 … 0 … −(T−1)
    div_term = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device)
        * -(math.log(10000.0) / d_model)
    )
    angles = relative[:, None] * div_term[None, :]  # [2T − 1, d/2]
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)


class _MultiHeadBase(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_k = d_model // n_heads
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, d] → [B, H, T, d_k]."""
        batch, frames, _ = x.shape
        return x.view(batch, frames, self.n_heads, self.d_k).transpose(1, 2)

    def _merge(self, context: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[B, H, T, d_k] → [B, T, d] through linear_out, padded rows zeroed before it."""
        batch, _, frames, _ = context.shape
        merged = context.transpose(1, 2).reshape(batch, frames, self.n_heads * self.d_k)
        merged = torch.where(valid[:, :, None], merged, torch.zeros_like(merged))
        out: torch.Tensor = self.linear_out(merged)
        return out


class RotaryMultiHeadAttention(_MultiHeadBase):
    """GigaAM's rotary attention: RoPE rotates the head-split *input* before the q/k projections."""

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """x [B, T, d] (normalised), rotary (cos, sin) [T, d_k], valid [B, T] bool."""
        batch, frames, d_model = x.shape
        cos, sin = (table.to(x.dtype)[None, :, None, :] for table in rotary)
        split = x.view(batch, frames, self.n_heads, self.d_k)
        rotated = (split * cos + rotate_half(split) * sin).reshape(batch, frames, d_model)
        q = self._heads(self.linear_q(rotated))
        k = self._heads(self.linear_k(rotated))
        v = self._heads(self.linear_v(x))
        context = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=key_bias(valid, q.dtype)
        )
        return self._merge(context, valid)


class RelPositionMultiHeadAttention(_MultiHeadBase):
    """Transformer-XL attention with per-layer biases u (pos_bias_u) and v (pos_bias_v)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__(d_model, n_heads)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(n_heads, d_model // n_heads))
        self.pos_bias_v = nn.Parameter(torch.zeros(n_heads, d_model // n_heads))

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x [B, T, d], pos_emb [2T − 1, d] (relative positions T−1 … −(T−1)), valid [B, T]."""
        frames = x.shape[1]
        q = self._heads(self.linear_q(x))
        k = self._heads(self.linear_k(x))
        v = self._heads(self.linear_v(x))
        # a 3-D input makes linear_pos a MatMul in an exported graph, like every other projection
        p = self.linear_pos(pos_emb[None])[0].view(-1, self.n_heads, self.d_k).transpose(0, 1)
        content = torch.matmul(q + self.pos_bias_u[None, :, None, :], k.transpose(-1, -2))
        position_raw = torch.matmul(q + self.pos_bias_v[None, :, None, :], p.transpose(-1, -2))
        # Column r of position_raw is relative position T−1−r; pick r = T−1−(i−j) for pair (i, j).
        query_index = torch.arange(frames, device=x.device)[:, None]
        key_index = torch.arange(frames, device=x.device)[None, :]
        shift = (frames - 1 - query_index + key_index).expand(*position_raw.shape[:2], -1, -1)
        position = torch.gather(position_raw, -1, shift)
        scores = (content + position) / math.sqrt(self.d_k)
        weights = torch.softmax(scores + key_bias(valid, scores.dtype), dim=-1)
        return self._merge(torch.matmul(weights, v), valid)
