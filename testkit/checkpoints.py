"""Writes GigaAM checkpoints in exactly the official file format, with random weights.

`torch.save({"cfg": <OmegaConf DictConfig>, "state_dict": OrderedDict})` with the real `_target_`
strings, key names, shapes and dtypes (docs/gigaam.md §2–§4); SentencePiece families get a
tokenizer trained here on generated Russian text, saved as `<stem>_tokenizer.model` beside the
checkpoint. Independent of gigaam_api on purpose: the loader is tested against this, not against
itself. Used by the test fixtures (small models) and the benchmarks (full size).
"""

from __future__ import annotations

import functools
import io
import math
import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import sentencepiece as spm
import torch
from omegaconf import OmegaConf

FAMILIES = (
    "v1_ctc",
    "v1_rnnt",
    "v2_ctc",
    "v2_rnnt",
    "v3_ctc",
    "v3_rnnt",
    "v3_e2e_ctc",
    "v3_e2e_rnnt",
    "multilingual_ctc",
)

RUSSIAN_CHARS = (" ", *(chr(code) for code in range(ord("а"), ord("я") + 1)))
"""The 33-symbol vocabulary of the character models: space, then а…я without ё."""

MULTILINGUAL_CHARS = (
    *RUSSIAN_CHARS,
    *(chr(code) for code in range(ord("a"), ord("z") + 1)),
    *"ёәғқңөұүһі",
    "'",
)
"""70 characters standing in for the multilingual vocabulary (the real one is not known)."""

assert len(RUSSIAN_CHARS) == 33
assert len(MULTILINGUAL_CHARS) == 70

Generation = Literal["v1", "v2", "v3", "multilingual"]


@dataclass(frozen=True)
class _Family:
    generation: Generation
    kind: Literal["ctc", "rnnt"]
    vocabulary: tuple[str, ...] | None  # None: SentencePiece
    sp_pieces: int = 0
    sp_byte_fallback: bool = False


_FAMILIES: dict[str, _Family] = {
    "v1_ctc": _Family("v1", "ctc", RUSSIAN_CHARS),
    "v1_rnnt": _Family("v1", "rnnt", None, sp_pieces=128),
    "v2_ctc": _Family("v2", "ctc", RUSSIAN_CHARS),
    "v2_rnnt": _Family("v2", "rnnt", RUSSIAN_CHARS),
    "v3_ctc": _Family("v3", "ctc", RUSSIAN_CHARS),
    "v3_rnnt": _Family("v3", "rnnt", RUSSIAN_CHARS),
    "v3_e2e_ctc": _Family("v3", "ctc", None, sp_pieces=160),
    "v3_e2e_rnnt": _Family("v3", "rnnt", None, sp_pieces=384, sp_byte_fallback=True),
    "multilingual_ctc": _Family("multilingual", "ctc", MULTILINGUAL_CHARS),
}


@dataclass(frozen=True)
class _Geometry:
    d_model: int
    n_layers: int
    n_heads: int
    ff_expansion_factor: int
    pred_hidden: int
    joint_hidden: int


_SMALL = _Geometry(
    d_model=32, n_layers=2, n_heads=4, ff_expansion_factor=4, pred_hidden=24, joint_hidden=24
)
_FULL = _Geometry(
    d_model=768, n_layers=16, n_heads=16, ff_expansion_factor=4, pred_hidden=320, joint_hidden=320
)

N_MELS = 64
SAMPLE_RATE = 16_000
POS_EMB_MAX_LEN = 5000


def _is_v3_like(family: _Family) -> bool:
    return family.generation in ("v3", "multilingual")


def _fft_size(family: _Family) -> int:
    return 320 if _is_v3_like(family) else 400


def _conv_kernel(family: _Family) -> int:
    return 5 if _is_v3_like(family) else 31


def _num_classes(family: _Family, sp_pieces: int) -> int:
    return (len(family.vocabulary) if family.vocabulary is not None else sp_pieces) + 1


# ---------------------------------------------------------------- SentencePiece on generated text

_TEXT = (
    "ничьих не требуя похвал счастлив уж я надеждой сладкой что дева с трепетом любви посмотрит "
    "может быть украдкой на песни грешные мои у лукоморья дуб зелёный вечерня отошла давно но в "
    "кельях тихо и темно уже сам игумен строгий свои молитвы прекратил кости ветхие склонил ёлка "
    "ещё тёмную живопись икон раздаётся тишине тяжкий вздох шёпот важный мрачно дремлет свод"
)
_WORDS = _TEXT.split()


def _russian_sentences(count: int, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    endings = (".", ",", "!", "?", " — 12.", " в 2024 году.", ": 7 раз.")
    for _ in range(count):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 12))]
        words[0] = words[0].capitalize()
        yield " ".join(words) + rng.choice(endings)


@functools.cache
def _sentencepiece_model(pieces: int, byte_fallback: bool) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_russian_sentences(3000, seed=pieces),
        model_writer=model,
        vocab_size=pieces,
        byte_fallback=byte_fallback,
        character_coverage=1.0,
        minloglevel=2,
    )
    return model.getvalue()


# ---------------------------------------------------------------- preprocessor buffers (§5.2)


def _periodic_hann(length: int) -> npt.NDArray[np.float32]:
    n = np.arange(length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * math.pi * n / length)).astype(np.float32)


def _htk_mel_filterbank(n_fft: int) -> npt.NDArray[np.float32]:
    """[n_fft/2+1, N_MELS] triangular HTK filters from 0 to Nyquist, no area normalisation."""
    nyquist_hz = SAMPLE_RATE / 2
    bin_hz = np.linspace(0.0, nyquist_hz, n_fft // 2 + 1)
    top_mel = 2595.0 * math.log10(1.0 + nyquist_hz / 700.0)
    edges_mel = np.linspace(0.0, top_mel, N_MELS + 2)
    edges_hz = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bin_hz[:, None] - lower[None, :]) / (centre - lower)[None, :]
    falling = (upper[None, :] - bin_hz[:, None]) / (upper - centre)[None, :]
    filters: npt.NDArray[np.float64] = np.maximum(0.0, np.minimum(rising, falling))
    return filters.astype(np.float32)


def _preprocessor_buffers(family: _Family) -> dict[str, torch.Tensor]:
    n_fft = _fft_size(family)
    window = torch.from_numpy(_periodic_hann(n_fft))
    filterbank = torch.from_numpy(_htk_mel_filterbank(n_fft))
    if _is_v3_like(
        family
    ):  # v3 stores bf16-rounded values in fp32 containers (docs/gigaam.md §2.4)
        window = window.to(torch.bfloat16).float()
        filterbank = filterbank.to(torch.bfloat16).float()
    return {
        "preprocessor.featurizer.0.spectrogram.window": window,
        "preprocessor.featurizer.0.mel_scale.fb": filterbank,
    }


# ---------------------------------------------------------------- random weights (§4)


class _Init:
    def __init__(self, seed: int) -> None:
        self._generator = torch.Generator().manual_seed(seed)

    def weight(self, *shape: int, fan_in: int) -> torch.Tensor:
        return torch.randn(shape, generator=self._generator) / math.sqrt(fan_in)

    def small(self, *shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(shape, generator=self._generator) * scale

    def norm_weight(self, size: int) -> torch.Tensor:
        return 1.0 + self.small(size)

    def positive(self, size: int) -> torch.Tensor:
        return 0.5 + torch.rand(size, generator=self._generator)


def _subsampling(family: _Family, g: _Geometry, init: _Init) -> dict[str, torch.Tensor]:
    d = g.d_model
    p = "encoder.pre_encode."
    if _is_v3_like(family):
        k = 5
        return {
            p + "conv.0.weight": init.weight(d, N_MELS, k, fan_in=N_MELS * k),
            p + "conv.0.bias": init.small(d),
            p + "conv.2.weight": init.weight(d, d, k, fan_in=d * k),
            p + "conv.2.bias": init.small(d),
        }
    flat = d * (N_MELS // 4)
    return {
        p + "conv.0.weight": init.weight(d, 1, 3, 3, fan_in=9),
        p + "conv.0.bias": init.small(d),
        p + "conv.2.weight": init.weight(d, d, 3, 3, fan_in=d * 9),
        p + "conv.2.bias": init.small(d),
        p + "out.weight": init.weight(d, flat, fan_in=flat),
        p + "out.bias": init.small(d),
    }


def _layer_norm(prefix: str, d: int, init: _Init) -> dict[str, torch.Tensor]:
    return {prefix + ".weight": init.norm_weight(d), prefix + ".bias": init.small(d)}


def _feed_forward(prefix: str, d: int, d_ff: int, init: _Init) -> dict[str, torch.Tensor]:
    return {
        prefix + ".linear1.weight": init.weight(d_ff, d, fan_in=d),
        prefix + ".linear1.bias": init.small(d_ff),
        prefix + ".linear2.weight": init.weight(d, d_ff, fan_in=d_ff),
        prefix + ".linear2.bias": init.small(d),
    }


def _conv_module(prefix: str, family: _Family, d: int, init: _Init) -> dict[str, torch.Tensor]:
    k = _conv_kernel(family)
    tensors = {
        prefix + ".pointwise_conv1.weight": init.weight(2 * d, d, 1, fan_in=d),
        prefix + ".pointwise_conv1.bias": init.small(2 * d),
        prefix + ".depthwise_conv.weight": init.weight(d, 1, k, fan_in=k),
        prefix + ".depthwise_conv.bias": init.small(d),
        prefix + ".batch_norm.weight": init.norm_weight(d),
        prefix + ".batch_norm.bias": init.small(d),
    }
    if not _is_v3_like(family):  # BatchNorm1d also saves its running statistics
        tensors[prefix + ".batch_norm.running_mean"] = init.small(d)
        tensors[prefix + ".batch_norm.running_var"] = init.positive(d)
        tensors[prefix + ".batch_norm.num_batches_tracked"] = torch.tensor(1000, dtype=torch.long)
    tensors[prefix + ".pointwise_conv2.weight"] = init.weight(d, d, 1, fan_in=d)
    tensors[prefix + ".pointwise_conv2.bias"] = init.small(d)
    return tensors


def _attention(prefix: str, family: _Family, g: _Geometry, init: _Init) -> dict[str, torch.Tensor]:
    d = g.d_model
    tensors: dict[str, torch.Tensor] = {}
    rel_pos = family.generation == "v1"
    if rel_pos:  # a module's own parameters come before its children's in state_dict()
        tensors[prefix + ".pos_bias_u"] = init.small(g.n_heads, d // g.n_heads, scale=0.1)
        tensors[prefix + ".pos_bias_v"] = init.small(g.n_heads, d // g.n_heads, scale=0.1)
    for name in ("linear_q", "linear_k", "linear_v", "linear_out"):
        tensors[f"{prefix}.{name}.weight"] = init.weight(d, d, fan_in=d)
        tensors[f"{prefix}.{name}.bias"] = init.small(d)
    if rel_pos:
        tensors[prefix + ".linear_pos.weight"] = init.weight(d, d, fan_in=d)
    return tensors


def _encoder_layer(i: int, family: _Family, g: _Geometry, init: _Init) -> dict[str, torch.Tensor]:
    p = f"encoder.layers.{i}."
    d, d_ff = g.d_model, g.d_model * g.ff_expansion_factor
    return {
        **_layer_norm(p + "norm_feed_forward1", d, init),
        **_feed_forward(p + "feed_forward1", d, d_ff, init),
        **_layer_norm(p + "norm_conv", d, init),
        **_conv_module(p + "conv", family, d, init),
        **_layer_norm(p + "norm_self_att", d, init),
        **_attention(p + "self_attn", family, g, init),
        **_layer_norm(p + "norm_feed_forward2", d, init),
        **_feed_forward(p + "feed_forward2", d, d_ff, init),
        **_layer_norm(p + "norm_out", d, init),
    }


def _head(family: _Family, g: _Geometry, num_classes: int, init: _Init) -> dict[str, torch.Tensor]:
    d, c, p, j = g.d_model, num_classes, g.pred_hidden, g.joint_hidden
    if family.kind == "ctc":
        return {
            "head.decoder_layers.0.weight": init.weight(c, d, 1, fan_in=d),
            "head.decoder_layers.0.bias": init.small(c),
        }
    embed = init.weight(c, p, fan_in=1) * 0.5
    embed[c - 1] = 0.0  # padding_idx = blank: its row is zero
    return {
        "head.decoder.embed.weight": embed,
        "head.decoder.lstm.weight_ih_l0": init.weight(4 * p, p, fan_in=p),
        "head.decoder.lstm.weight_hh_l0": init.weight(4 * p, p, fan_in=p),
        "head.decoder.lstm.bias_ih_l0": init.small(4 * p),
        "head.decoder.lstm.bias_hh_l0": init.small(4 * p),
        "head.joint.pred.weight": init.weight(j, p, fan_in=p),
        "head.joint.pred.bias": init.small(j),
        "head.joint.enc.weight": init.weight(j, d, fan_in=d),
        "head.joint.enc.bias": init.small(j),
        "head.joint.joint_net.1.weight": init.weight(c, j, fan_in=j),
        "head.joint.joint_net.1.bias": init.small(c),
    }


def _state_dict(
    family: _Family, g: _Geometry, num_classes: int, seed: int
) -> OrderedDict[str, torch.Tensor]:
    init = _Init(seed)
    encoder: dict[str, torch.Tensor] = _subsampling(family, g, init)
    for i in range(g.n_layers):
        encoder.update(_encoder_layer(i, family, g, init))
    if family.generation == "v3":  # v3 stores the encoder in fp16 (docs/gigaam.md §2.4)
        encoder = {
            key: value.half() if value.is_floating_point() else value
            for key, value in encoder.items()
        }
    state = OrderedDict(
        {
            **_preprocessor_buffers(family),
            **encoder,
            **_head(family, g, num_classes, init),
        }
    )
    # Module.state_dict() attaches version metadata; real checkpoints pickle it with the dict.
    state._metadata = OrderedDict({"": {"version": 1}})  # type: ignore[attr-defined]  # as torch does
    return state


# ---------------------------------------------------------------- cfg (§2.4, §2.5)


def _cfg(name: str, family: _Family, g: _Geometry, num_classes: int) -> dict[str, Any]:
    v3_like = _is_v3_like(family)
    n_fft = _fft_size(family)
    if v3_like:
        preprocessor: dict[str, Any] = {
            "_target_": "gigaam.preprocess.FeatureExtractor",
            "sample_rate": SAMPLE_RATE,
            "features": N_MELS,
            "win_length": n_fft,
            "hop_length": 160,
            "n_fft": n_fft,
            "center": False,
            "mel_scale": "htk",
            "mel_norm": None,
        }
        encoder: dict[str, Any] = {
            "_target_": "gigaam.encoder.ConformerEncoder",
            "feat_in": N_MELS,
            "n_layers": g.n_layers,
            "d_model": g.d_model,
            "subsampling": "conv1d",
            "subs_kernel_size": 5,
            "subsampling_factor": 4,
            "ff_expansion_factor": g.ff_expansion_factor,
            "self_attention_model": "rotary",
            "pos_emb_max_len": POS_EMB_MAX_LEN,
            "n_heads": g.n_heads,
            "conv_kernel_size": _conv_kernel(family),
            "flash_attn": False,
            "conv_norm_type": "layer_norm",
        }
    else:
        # v1/v2 code knew only conv2d subsampling and BatchNorm, so those fields are left out and
        # the FeatureExtractor took no STFT arguments (defaults 400/400/160, centered).
        preprocessor = {
            "_target_": "gigaam.preprocess.FeatureExtractor",
            "sample_rate": SAMPLE_RATE,
            "features": N_MELS,
        }
        encoder = {
            "_target_": "gigaam.encoder.ConformerEncoder",
            "feat_in": N_MELS,
            "n_layers": g.n_layers,
            "d_model": g.d_model,
            "subsampling_factor": 4,
            "ff_expansion_factor": g.ff_expansion_factor,
            "pos_emb_max_len": POS_EMB_MAX_LEN,
            "n_heads": g.n_heads,
            "conv_kernel_size": _conv_kernel(family),
        }
        if family.generation == "v1":
            encoder["self_attention_model"] = "rel_pos"
    if family.kind == "ctc":
        head: dict[str, Any] = {
            "_target_": "gigaam.decoder.CTCHead",
            "feat_in": g.d_model,
            "num_classes": num_classes,
        }
        decoding_target = "gigaam.decoding.CTCGreedyDecoding"
    else:
        head = {
            "_target_": "gigaam.decoder.RNNTHead",
            "decoder": {
                "pred_hidden": g.pred_hidden,
                "pred_rnn_layers": 1,
                "num_classes": num_classes,
            },
            "joint": {
                "enc_hidden": g.d_model,
                "pred_hidden": g.pred_hidden,
                "joint_hidden": g.joint_hidden,
                "num_classes": num_classes,
            },
        }
        decoding_target = "gigaam.decoding.RNNTGreedyDecoding"
    decoding: dict[str, Any] = {"_target_": decoding_target}
    if family.vocabulary is not None:
        decoding["vocabulary"] = list(family.vocabulary)
    else:
        decoding["vocabulary"] = None
        # A path on the machine that made the checkpoint; loaders must not rely on it.
        decoding["model_path"] = f"/mnt/training/tokenizers/{name}_tokenizer.model"
    cfg: dict[str, Any] = {
        "model_class": family.kind,
        "sample_rate": SAMPLE_RATE,
        "preprocessor": preprocessor,
        "encoder": encoder,
        "head": head,
        "decoding": decoding,
    }
    if family.generation == "v2":
        cfg["labels"] = list(RUSSIAN_CHARS)
    if v3_like:
        cfg["model_name"] = name
    if family.generation == "v3":
        cfg["hashes"] = {"model": "1bdc12052560591b7cdf35bef02619fa"}
    return cfg


# --------------------------------------------------------------------------- public helpers


def tokenizer_path_for(checkpoint: Path) -> Path:
    """Where the tokenizer of a checkpoint lives: `<stem>_tokenizer.model` beside it."""
    return checkpoint.with_name(f"{checkpoint.stem}_tokenizer.model")


def write_checkpoint(path: Path, family: str, *, seed: int = 0, full_size: bool = False) -> Path:
    """Write `path` as an official-format checkpoint of `family` (and its tokenizer); return path.

    Small geometry by default (d_model 32, 2 layers, 4 heads); full_size gives 768×16 with 16
    heads and 320-wide RNN-T head. SentencePiece families keep their small trained vocabulary even
    at full size (num_classes follows the tokenizer).
    """
    spec = _FAMILIES[family]
    geometry = _FULL if full_size else _SMALL
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.vocabulary is None:
        model = _sentencepiece_model(spec.sp_pieces, spec.sp_byte_fallback)
        tokenizer_path_for(path).write_bytes(model)
    num_classes = _num_classes(spec, spec.sp_pieces)
    cfg = OmegaConf.create(_cfg(path.stem, spec, geometry, num_classes))
    state = _state_dict(spec, geometry, num_classes, seed)
    torch.save({"cfg": cfg, "state_dict": state}, path)
    return path
