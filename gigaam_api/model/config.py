"""A GigaAM checkpoint's architecture as explicit dataclasses (no hydra, no `_target_` execution).

parse_model_config() reads the checkpoint's cfg (already converted to plain dicts/lists) together
with the state_dict's shapes; the nn.Modules are built from these dataclasses alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from gigaam_api.errors import CheckpointError

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end (facts §5.2): v1/v2 use 400/400/centered, v3 320/320/not centered."""

    sample_rate: int = 16_000
    n_mels: int = 64
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    center: bool = True


@dataclass(frozen=True)
class EncoderConfig:
    """Conformer encoder geometry (facts §2.4, §3)."""

    feat_in: int
    n_layers: int
    d_model: int
    n_heads: int
    subsampling: Literal["conv1d", "conv2d"]
    subs_kernel_size: int
    subsampling_factor: int
    ff_expansion_factor: int
    self_attention_model: Literal["rotary", "rel_pos"]
    pos_emb_max_len: int
    conv_norm_type: Literal["batch_norm", "layer_norm"]
    conv_kernel_size: int


@dataclass(frozen=True)
class CtcHeadConfig:
    """Kernel-1 Conv1d over encoder frames; blank is the last class."""

    feat_in: int
    num_classes: int


@dataclass(frozen=True)
class RnntHeadConfig:
    """LSTM predictor plus joint network; blank is the last class."""

    pred_hidden: int
    pred_rnn_layers: int
    enc_hidden: int
    joint_hidden: int
    num_classes: int


@dataclass(frozen=True)
class DecodingConfig:
    """vocabulary: the characters of a char model; None means a SentencePiece tokenizer file.

    vocab_size: tokens without the blank (num_classes − 1); parse_model_config always sets it, so
    a SentencePiece file can be checked against the head. None skips that check.
    """

    vocabulary: tuple[str, ...] | None
    max_symbols_per_step: int = 10
    vocab_size: int | None = None


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build and run one GigaAM ASR model."""

    name: str
    features: FeatureConfig
    encoder: EncoderConfig
    head: CtcHeadConfig | RnntHeadConfig
    decoding: DecodingConfig

    @property
    def kind(self) -> Literal["ctc", "rnnt"]:
        return "ctc" if isinstance(self.head, CtcHeadConfig) else "rnnt"

    @property
    def blank_id(self) -> int:
        return self.head.num_classes - 1

    @property
    def uses_sentencepiece(self) -> bool:
        return self.decoding.vocabulary is None


# ------------------------------------------------------------------------------------ parsing

_T = TypeVar("_T")
_LAYER_KEY = re.compile(r"^encoder\.layers\.(\d+)\.")
_SUBSAMPLING_CONV_KEY = re.compile(r"^encoder\.pre_encode\.conv\.(\d+)\.weight$")
_LSTM_LAYER_KEY = re.compile(r"^head\.decoder\.lstm\.weight_ih_l(\d+)$")


class _Reader:
    """Typed access to one cfg section; wrong types and contradictions become CheckpointError."""

    def __init__(self, model: str, path: str, section: Mapping[str, Any]) -> None:
        self.model = model
        self.path = path
        self.section = section

    def fail(self, message: str) -> CheckpointError:
        return CheckpointError(f"Checkpoint {self.model!r}: {message}")

    def sub(self, key: str, *, required: bool) -> _Reader:
        value = self.section.get(key)
        if value is None and not required:
            value = {}
        if not isinstance(value, Mapping):
            raise self.fail(f"cfg {self._name(key)} is missing or not a mapping")
        return _Reader(self.model, self._name(key), value)

    def get(self, key: str, kind: type[_T]) -> _T | None:
        value = self.section.get(key)
        if value is None:
            return None
        # bool is an int subclass: an int field holding True is a malformed cfg, not 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"cfg {self._name(key)} = {value!r} is not a {kind.__name__}")
        return value

    def choice(self, key: str, allowed: tuple[str, ...]) -> str | None:
        value = self.get(key, str)
        if value is not None and value not in allowed:
            raise self.fail(f"cfg {self._name(key)} = {value!r} is not one of {allowed}")
        return value

    def resolve(
        self, key: str, from_cfg: _T | None, from_weights: _T | None, default: _T | None
    ) -> _T:
        """cfg and weights must agree when both speak; else whichever speaks, else the default."""
        if from_cfg is not None and from_weights is not None and from_cfg != from_weights:
            raise self.fail(
                f"cfg {self._name(key)} = {from_cfg!r} but the weights imply {from_weights!r}"
            )
        for value in (from_cfg, from_weights, default):
            if value is not None:
                return value
        raise self.fail(f"cfg {self._name(key)} is missing and cannot be read from the weights")

    def _name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


def _dim(shapes: Shapes, key: str, axis: int) -> int | None:
    shape = shapes.get(key)
    if shape is None or len(shape) <= axis:
        return None
    return shape[axis]


def _indices(shapes: Shapes, pattern: re.Pattern[str]) -> list[int]:
    return sorted({int(m.group(1)) for key in shapes if (m := pattern.match(key))})


def _parse_features(top: _Reader, shapes: Shapes) -> FeatureConfig:
    pre = top.sub("preprocessor", required=True)
    sample_rate = pre.get("sample_rate", int) or top.get("sample_rate", int) or 16_000
    if sample_rate != 16_000:
        raise top.fail(f"sample_rate {sample_rate} is not supported (only 16000 Hz)")
    fb_key = "preprocessor.featurizer.0.mel_scale.fb"
    window_key = "preprocessor.featurizer.0.spectrogram.window"
    n_mels = pre.resolve("features", pre.get("features", int), _dim(shapes, fb_key, 1), 64)
    # Defaults are what the v1/v2 FeatureExtractor hard-coded: sr//40, sr//40, sr//100, centered.
    fft_bins = _dim(shapes, fb_key, 0)
    n_fft = pre.resolve(
        "n_fft",
        pre.get("n_fft", int),
        None if fft_bins is None else (fft_bins - 1) * 2,
        sample_rate // 40,
    )
    win_length = pre.resolve(
        "win_length", pre.get("win_length", int), _dim(shapes, window_key, 0), sample_rate // 40
    )
    if win_length != n_fft:
        raise pre.fail(f"win_length {win_length} differs from n_fft {n_fft}; not supported")
    hop_length = pre.get("hop_length", int) or sample_rate // 100
    if hop_length <= 0 or n_mels <= 0:
        raise pre.fail("hop_length and features must be positive")
    center = pre.get("center", bool)
    return FeatureConfig(
        sample_rate=sample_rate,
        n_mels=n_mels,
        n_fft=n_fft,
        win_length=win_length,
        hop_length=hop_length,
        center=True if center is None else center,
    )


def _parse_encoder(top: _Reader, shapes: Shapes, n_mels: int) -> EncoderConfig:
    enc = top.sub("encoder", required=True)
    layer0 = "encoder.layers.0."
    d_model = enc.resolve(
        "d_model", enc.get("d_model", int), _dim(shapes, layer0 + "norm_out.weight", 0), None
    )
    layers = _indices(shapes, _LAYER_KEY)
    n_layers = enc.resolve("n_layers", enc.get("n_layers", int), len(layers) or None, None)

    sub0 = shapes.get("encoder.pre_encode.conv.0.weight")
    subsampling_from_weights = None if sub0 is None else {3: "conv1d", 4: "conv2d"}.get(len(sub0))
    subsampling = enc.resolve(
        "subsampling",
        enc.choice("subsampling", ("conv1d", "conv2d")),
        subsampling_from_weights,
        "conv2d",
    )
    # conv2d folds the mel axis into its Linear's input; the full shape check covers that case.
    feat_in_from_weights = sub0[1] if sub0 is not None and subsampling == "conv1d" else None
    feat_in = enc.resolve("feat_in", enc.get("feat_in", int), feat_in_from_weights, n_mels)
    if feat_in != n_mels:
        raise enc.fail(f"feat_in {feat_in} differs from the {n_mels} mel features")
    subs_kernel_size = enc.resolve(
        "subs_kernel_size", enc.get("subs_kernel_size", int), None if sub0 is None else sub0[-1], 3
    )
    stages = len(_indices(shapes, _SUBSAMPLING_CONV_KEY))
    subsampling_factor = enc.resolve(
        "subsampling_factor", enc.get("subsampling_factor", int), 2**stages if stages else None, 4
    )
    d_ff = _dim(shapes, layer0 + "feed_forward1.linear1.weight", 0)
    ff_expansion_factor = enc.resolve(
        "ff_expansion_factor",
        enc.get("ff_expansion_factor", int),
        None if d_ff is None or d_ff % d_model else d_ff // d_model,
        4,
    )
    rel_pos_keys = any(
        key.endswith(("self_attn.linear_pos.weight", "self_attn.pos_bias_u")) for key in shapes
    )
    attention = enc.resolve(
        "self_attention_model",
        enc.choice("self_attention_model", ("rotary", "rel_pos")),
        ("rel_pos" if rel_pos_keys else "rotary") if layers else None,
        "rotary",
    )
    n_heads = enc.resolve(
        "n_heads", enc.get("n_heads", int), _dim(shapes, layer0 + "self_attn.pos_bias_u", 0), None
    )
    if d_model % n_heads:
        raise enc.fail(f"d_model {d_model} is not divisible by n_heads {n_heads}")
    batch_norm_keys = any(key.endswith("conv.batch_norm.running_mean") for key in shapes)
    conv_norm_type = enc.resolve(
        "conv_norm_type",
        enc.choice("conv_norm_type", ("batch_norm", "layer_norm")),
        ("batch_norm" if batch_norm_keys else "layer_norm") if layers else None,
        "batch_norm",
    )
    conv_kernel_size = enc.resolve(
        "conv_kernel_size",
        enc.get("conv_kernel_size", int),
        _dim(shapes, layer0 + "conv.depthwise_conv.weight", 2),
        31,
    )
    if conv_kernel_size % 2 == 0:
        raise enc.fail(f"conv_kernel_size {conv_kernel_size} must be odd")
    return EncoderConfig(
        feat_in=feat_in,
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        subsampling="conv1d" if subsampling == "conv1d" else "conv2d",
        subs_kernel_size=subs_kernel_size,
        subsampling_factor=subsampling_factor,
        ff_expansion_factor=ff_expansion_factor,
        self_attention_model="rel_pos" if attention == "rel_pos" else "rotary",
        pos_emb_max_len=enc.get("pos_emb_max_len", int) or 5000,
        conv_norm_type="layer_norm" if conv_norm_type == "layer_norm" else "batch_norm",
        conv_kernel_size=conv_kernel_size,
    )


def _parse_head(top: _Reader, shapes: Shapes, d_model: int) -> CtcHeadConfig | RnntHeadConfig:
    head = top.sub("head", required=False)
    target = head.get("_target_", str) or ""
    kind_from_cfg = {"CTCHead": "ctc", "RNNTHead": "rnnt"}.get(target.rsplit(".", 1)[-1])
    kind_from_weights = (
        "rnnt"
        if "head.decoder.embed.weight" in shapes
        else "ctc"
        if "head.decoder_layers.0.weight" in shapes
        else None
    )
    if kind_from_cfg is None and kind_from_weights is None:
        raise top.fail(
            f"it has no CTC or RNN-T head (head target {target!r}; an SSL or emotion model?)"
        )
    kind = head.resolve("_target_", kind_from_cfg, kind_from_weights, None)
    if kind == "ctc":
        feat_in = head.resolve(
            "feat_in",
            head.get("feat_in", int),
            _dim(shapes, "head.decoder_layers.0.weight", 1),
            d_model,
        )
        if feat_in != d_model:
            raise head.fail(f"CTC head feat_in {feat_in} differs from d_model {d_model}")
        num_classes = head.resolve(
            "num_classes",
            head.get("num_classes", int),
            _dim(shapes, "head.decoder_layers.0.bias", 0),
            None,
        )
        return CtcHeadConfig(feat_in=feat_in, num_classes=num_classes)
    decoder = head.sub("decoder", required=False)
    joint = head.sub("joint", required=False)
    embed = shapes.get("head.decoder.embed.weight")
    num_classes = decoder.resolve(
        "num_classes", decoder.get("num_classes", int), None if embed is None else embed[0], None
    )
    joint.resolve("num_classes", joint.get("num_classes", int), num_classes, None)
    pred_hidden = decoder.resolve(
        "pred_hidden", decoder.get("pred_hidden", int), None if embed is None else embed[1], None
    )
    joint.resolve("pred_hidden", joint.get("pred_hidden", int), pred_hidden, None)
    lstm_layers = _indices(shapes, _LSTM_LAYER_KEY)
    pred_rnn_layers = decoder.resolve(
        "pred_rnn_layers", decoder.get("pred_rnn_layers", int), len(lstm_layers) or None, 1
    )
    enc_hidden = joint.resolve(
        "enc_hidden",
        joint.get("enc_hidden", int),
        _dim(shapes, "head.joint.enc.weight", 1),
        d_model,
    )
    if enc_hidden != d_model:
        raise joint.fail(f"enc_hidden {enc_hidden} differs from d_model {d_model}")
    joint_hidden = joint.resolve(
        "joint_hidden",
        joint.get("joint_hidden", int),
        _dim(shapes, "head.joint.pred.weight", 0),
        None,
    )
    return RnntHeadConfig(
        pred_hidden=pred_hidden,
        pred_rnn_layers=pred_rnn_layers,
        enc_hidden=enc_hidden,
        joint_hidden=joint_hidden,
        num_classes=num_classes,
    )


def _parse_vocabulary(reader: _Reader, key: str) -> tuple[str, ...] | None:
    value = reader.get(key, list)
    if value is None:
        return None
    if not value or not all(isinstance(token, str) and token for token in value):
        raise reader.fail(f"cfg {key} must be a non-empty list of non-empty strings")
    return tuple(value)


def _parse_decoding(top: _Reader, num_classes: int) -> DecodingConfig:
    decoding = top.sub("decoding", required=False)
    # v2 checkpoints may keep the characters in a top-level `labels` list instead.
    vocabulary = _parse_vocabulary(decoding, "vocabulary") or _parse_vocabulary(top, "labels")
    if vocabulary is not None and len(vocabulary) != num_classes - 1:
        raise top.fail(
            f"the vocabulary has {len(vocabulary)} characters but the head has {num_classes} "
            "classes (vocabulary + blank)"
        )
    max_symbols = decoding.get("max_symbols_per_step", int) or 10
    return DecodingConfig(
        vocabulary=vocabulary, max_symbols_per_step=max_symbols, vocab_size=num_classes - 1
    )


def parse_model_config(
    cfg: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], *, name: str
) -> ModelConfig:
    """Build a ModelConfig from a checkpoint's cfg (plain containers) and its tensor shapes.

    Fields absent from the cfg are read from the weights or take upstream's defaults; a cfg value
    the weights contradict, or any missing, unexpected or mis-shaped tensor, is a CheckpointError.
    """
    top = _Reader(name, "", cfg)
    features = _parse_features(top, shapes)
    encoder = _parse_encoder(top, shapes, features.n_mels)
    head = _parse_head(top, shapes, encoder.d_model)
    decoding = _parse_decoding(top, head.num_classes)
    config = ModelConfig(
        name=name, features=features, encoder=encoder, head=head, decoding=decoding
    )
    check_shapes(config, shapes)
    return config


# ------------------------------------------------------------------------ expected tensors


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor an official checkpoint of this architecture holds, with its shape."""
    f, e = config.features, config.encoder
    d, m = e.d_model, f.n_mels
    shapes: dict[str, tuple[int, ...]] = {
        "preprocessor.featurizer.0.spectrogram.window": (f.win_length,),
        "preprocessor.featurizer.0.mel_scale.fb": (f.n_fft // 2 + 1, m),
    }
    stages = e.subsampling_factor.bit_length() - 1
    k = e.subs_kernel_size
    mel_bins = m
    for stage in range(stages):
        conv = f"encoder.pre_encode.conv.{2 * stage}."
        in_channels = (m if e.subsampling == "conv1d" else 1) if stage == 0 else d
        if e.subsampling == "conv1d":
            shapes[conv + "weight"] = (d, in_channels, k)
        else:
            shapes[conv + "weight"] = (d, in_channels, k, k)
            mel_bins = (mel_bins + 1) // 2
        shapes[conv + "bias"] = (d,)
    if e.subsampling == "conv2d":
        shapes["encoder.pre_encode.out.weight"] = (d, d * mel_bins)
        shapes["encoder.pre_encode.out.bias"] = (d,)
    for i in range(e.n_layers):
        shapes.update(_layer_shapes(f"encoder.layers.{i}.", e))
    shapes.update(_head_shapes(config.head, d))
    return shapes


def _layer_shapes(p: str, e: EncoderConfig) -> dict[str, tuple[int, ...]]:
    d, d_ff = e.d_model, e.d_model * e.ff_expansion_factor
    shapes: dict[str, tuple[int, ...]] = {}
    for norm in (
        "norm_feed_forward1",
        "norm_conv",
        "norm_self_att",
        "norm_feed_forward2",
        "norm_out",
        "conv.batch_norm",
    ):
        shapes[f"{p}{norm}.weight"] = (d,)
        shapes[f"{p}{norm}.bias"] = (d,)
    for ff in ("feed_forward1", "feed_forward2"):
        shapes[f"{p}{ff}.linear1.weight"] = (d_ff, d)
        shapes[f"{p}{ff}.linear1.bias"] = (d_ff,)
        shapes[f"{p}{ff}.linear2.weight"] = (d, d_ff)
        shapes[f"{p}{ff}.linear2.bias"] = (d,)
    shapes[p + "conv.pointwise_conv1.weight"] = (2 * d, d, 1)
    shapes[p + "conv.pointwise_conv1.bias"] = (2 * d,)
    shapes[p + "conv.depthwise_conv.weight"] = (d, 1, e.conv_kernel_size)
    shapes[p + "conv.depthwise_conv.bias"] = (d,)
    shapes[p + "conv.pointwise_conv2.weight"] = (d, d, 1)
    shapes[p + "conv.pointwise_conv2.bias"] = (d,)
    if e.conv_norm_type == "batch_norm":
        shapes[p + "conv.batch_norm.running_mean"] = (d,)
        shapes[p + "conv.batch_norm.running_var"] = (d,)
        shapes[p + "conv.batch_norm.num_batches_tracked"] = ()
    for linear in ("linear_q", "linear_k", "linear_v", "linear_out"):
        shapes[f"{p}self_attn.{linear}.weight"] = (d, d)
        shapes[f"{p}self_attn.{linear}.bias"] = (d,)
    if e.self_attention_model == "rel_pos":
        shapes[p + "self_attn.linear_pos.weight"] = (d, d)
        shapes[p + "self_attn.pos_bias_u"] = (e.n_heads, d // e.n_heads)
        shapes[p + "self_attn.pos_bias_v"] = (e.n_heads, d // e.n_heads)
    return shapes


def _head_shapes(head: CtcHeadConfig | RnntHeadConfig, d: int) -> dict[str, tuple[int, ...]]:
    c = head.num_classes
    if isinstance(head, CtcHeadConfig):
        return {"head.decoder_layers.0.weight": (c, d, 1), "head.decoder_layers.0.bias": (c,)}
    p, j = head.pred_hidden, head.joint_hidden
    shapes: dict[str, tuple[int, ...]] = {"head.decoder.embed.weight": (c, p)}
    for layer in range(head.pred_rnn_layers):
        shapes[f"head.decoder.lstm.weight_ih_l{layer}"] = (4 * p, p)
        shapes[f"head.decoder.lstm.weight_hh_l{layer}"] = (4 * p, p)
        shapes[f"head.decoder.lstm.bias_ih_l{layer}"] = (4 * p,)
        shapes[f"head.decoder.lstm.bias_hh_l{layer}"] = (4 * p,)
    shapes.update(
        {
            "head.joint.pred.weight": (j, p),
            "head.joint.pred.bias": (j,),
            "head.joint.enc.weight": (j, d),
            "head.joint.enc.bias": (j,),
            "head.joint.joint_net.1.weight": (c, j),
            "head.joint.joint_net.1.bias": (c,),
        }
    )
    return shapes


def check_shapes(config: ModelConfig, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise CheckpointError listing every missing, unexpected or mis-shaped tensor."""
    expected = expected_shapes(config)
    problems = []
    missing = [key for key in expected if key not in shapes]
    unexpected = [key for key in shapes if key not in expected]
    wrong = [
        f"{key} {tuple(shapes[key])} (expected {shape})"
        for key, shape in expected.items()
        if key in shapes and tuple(shapes[key]) != shape
    ]
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", wrong)):
        if keys:
            problems.append(f"{len(keys)} {label}: {_preview(keys)}")
    if problems:
        raise CheckpointError(
            f"Checkpoint {config.name!r} does not match its {config.kind} architecture: "
            + "; ".join(problems)
        )


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")
