"""Rotary and rel_pos attention: RoPE properties, projection order, masking without NaN."""

from __future__ import annotations

import math

import pytest
import torch

from gigaam_api.model.attention import (
    RelPositionMultiHeadAttention,
    RotaryEmbedding,
    RotaryMultiHeadAttention,
    relative_sinusoids,
    rotate_half,
)

D_MODEL, HEADS = 16, 2
D_K = D_MODEL // HEADS


def _steps(frames: int) -> torch.Tensor:
    """Positions 0…frames−1, as the encoder passes them."""
    return torch.arange(frames, dtype=torch.float32)


def _all_valid(frames: int) -> torch.Tensor:
    return torch.ones(1, frames, dtype=torch.bool)


def _rotate(x: torch.Tensor, position: int, rope: RotaryEmbedding) -> torch.Tensor:
    cos, sin = rope(_steps(position + 1))
    rotated: torch.Tensor = x * cos[position] + rotate_half(x) * sin[position]
    return rotated


def test_rope_uses_base_5000_and_duplicated_halves() -> None:
    rope = RotaryEmbedding(48, base=5000)
    cos, sin = rope(_steps(10))
    assert cos.shape == sin.shape == (10, 48)
    torch.testing.assert_close(cos[:, :24], cos[:, 24:])
    # angle of position 1, frequency index 1 = 5000^(-2/48)
    assert math.isclose(float(torch.acos(cos[1, 1])), 5000 ** (-2 / 48), rel_tol=1e-5)
    assert rotate_half(torch.arange(4.0)).tolist() == [-2.0, -3.0, 0.0, 1.0]


def test_rope_dot_product_depends_only_on_relative_position() -> None:
    rope = RotaryEmbedding(D_K, base=5000)
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, D_K, generator=generator)
    near = torch.dot(_rotate(q, 3, rope), _rotate(k, 1, rope))
    far = torch.dot(_rotate(q, 40, rope), _rotate(k, 38, rope))
    torch.testing.assert_close(near, far, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(_rotate(q, 17, rope).norm(), q.norm())


def test_rope_table_of_a_longer_input_starts_with_the_shorter_one() -> None:
    rope = RotaryEmbedding(D_K, base=5000)
    cos_long, sin_long = rope(_steps(6000))  # past upstream's 5000-frame table
    cos_short, sin_short = rope(_steps(8))
    assert cos_long.shape == (6000, D_K)
    torch.testing.assert_close(cos_long[:8], cos_short, rtol=0, atol=0)
    torch.testing.assert_close(sin_long[:8], sin_short, rtol=0, atol=0)


def test_rope_table_works_with_autograd_after_an_inference_mode_call() -> None:
    attention = RotaryMultiHeadAttention(D_MODEL, HEADS)
    rope = RotaryEmbedding(D_K, base=5000)
    x = torch.randn(1, 5, D_MODEL)
    with torch.inference_mode():
        attention(x, rope(_steps(5)), _all_valid(5))
    out = attention(x.requires_grad_(), rope(_steps(5)), _all_valid(5))
    out.sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def _reference_rotary(
    attention: RotaryMultiHeadAttention, x: torch.Tensor, rope: RotaryEmbedding
) -> torch.Tensor:
    """Facts §5.7 step by step for one sample [T, d]: rotate the raw input, then project."""
    frames = x.shape[0]
    cos, sin = rope(_steps(frames))
    split = x.view(frames, HEADS, D_K)
    rotated = (split * cos[:, None] + rotate_half(split) * sin[:, None]).reshape(frames, D_MODEL)
    q = attention.linear_q(rotated).view(frames, HEADS, D_K).transpose(0, 1)
    k = attention.linear_k(rotated).view(frames, HEADS, D_K).transpose(0, 1)
    v = attention.linear_v(x).view(frames, HEADS, D_K).transpose(0, 1)
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D_K), dim=-1)
    merged = (weights @ v).transpose(0, 1).reshape(frames, D_MODEL)
    out: torch.Tensor = attention.linear_out(merged)
    return out


def test_rotary_attention_rotates_before_the_projections() -> None:
    torch.manual_seed(0)
    attention = RotaryMultiHeadAttention(D_MODEL, HEADS)
    rope = RotaryEmbedding(D_K, base=5000)
    x = torch.randn(1, 7, D_MODEL)
    with torch.no_grad():
        out = attention(x, rope(_steps(7)), _all_valid(7))
        torch.testing.assert_close(out[0], _reference_rotary(attention, x[0], rope))


def _reference_rel_pos(attention: RelPositionMultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """Scores (q+u)·k_j + (q+v)·P(i−j) with P the projected sinusoid of relative position i−j."""
    frames = x.shape[0]
    table = relative_sinusoids(_steps(frames), D_MODEL)  # row r ↔ position frames−1−r
    p = attention.linear_pos(table).view(-1, HEADS, D_K)
    q = attention.linear_q(x).view(frames, HEADS, D_K)
    k = attention.linear_k(x).view(frames, HEADS, D_K)
    v = attention.linear_v(x).view(frames, HEADS, D_K)
    scores = torch.empty(HEADS, frames, frames)
    for h in range(HEADS):
        for i in range(frames):
            for j in range(frames):
                content = torch.dot(q[i, h] + attention.pos_bias_u[h], k[j, h])
                position = torch.dot(q[i, h] + attention.pos_bias_v[h], p[frames - 1 - (i - j), h])
                scores[h, i, j] = (content + position) / math.sqrt(D_K)
    weights = torch.softmax(scores, dim=-1)
    merged = torch.einsum("hij,jhd->ihd", weights, v).reshape(frames, D_MODEL)
    out: torch.Tensor = attention.linear_out(merged)
    return out


def test_rel_pos_attention_matches_the_transformer_xl_formula() -> None:
    torch.manual_seed(1)
    attention = RelPositionMultiHeadAttention(D_MODEL, HEADS)
    with torch.no_grad():
        attention.pos_bias_u.normal_()
        attention.pos_bias_v.normal_()
        x = torch.randn(1, 6, D_MODEL)
        out = attention(x, relative_sinusoids(_steps(6), D_MODEL), _all_valid(6))
        torch.testing.assert_close(out[0], _reference_rel_pos(attention, x[0]))


def test_relative_sinusoids_are_sin_cos_of_descending_positions() -> None:
    table = relative_sinusoids(_steps(3), 4)
    assert table.shape == (5, 4)
    assert table[2].tolist() == [0.0, 1.0, 0.0, 1.0]  # position 0
    assert math.isclose(float(table[0, 0]), math.sin(2.0), rel_tol=1e-6)  # position 2, ω_0 = 1


@pytest.mark.parametrize("kind", ["rotary", "rel_pos"])
def test_padded_keys_are_ignored_and_padded_rows_stay_finite(kind: str) -> None:
    torch.manual_seed(2)
    rope = RotaryEmbedding(D_K, base=5000)
    attention: RotaryMultiHeadAttention | RelPositionMultiHeadAttention
    if kind == "rotary":
        attention = RotaryMultiHeadAttention(D_MODEL, HEADS)
    else:
        attention = RelPositionMultiHeadAttention(D_MODEL, HEADS)

    def positions(frames: int) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        if kind == "rotary":
            cos, sin = rope(_steps(frames))
            return cos, sin
        return relative_sinusoids(_steps(frames), D_MODEL)

    x = torch.randn(3, 9, D_MODEL)
    x[1, 5:] = 1e4  # garbage in padding must not reach valid rows
    valid = torch.arange(9)[None, :] < torch.tensor([9, 5, 0])[:, None]
    with torch.no_grad():
        batched = attention(x, positions(9), valid)
        alone = attention(x[1:2, :5], positions(5), _all_valid(5))
    torch.testing.assert_close(batched[1, :5], alone[0], atol=1e-5, rtol=1e-5)
    assert bool(torch.isfinite(batched).all())
    # a padded row carries only linear_out's bias: no NaN, no data
    torch.testing.assert_close(batched[2], attention.linear_out.bias.detach().expand(9, -1))
