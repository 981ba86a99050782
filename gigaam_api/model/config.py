"""A GigaAM checkpoint's architecture as explicit dataclasses (no hydra, no `_target_` execution).

parse_model_config() reads the checkpoint's cfg (already converted to plain dicts/lists) together
with the state_dict's shapes; the nn.Modules are built from these dataclasses alone. Which tensors
a network holds is the network's business: checkpoint.py compares the file against it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

from gigaam_api.errors import CheckpointError

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front end (docs/gigaam.md §5.1): v1/v2 400/400/centred, v3 320/320/not centred."""

    sample_rate: int = 16_000
    n_mels: int = 64
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    center: bool = True


@dataclass(frozen=True)
class EncoderConfig:
    """Conformer encoder geometry (docs/gigaam.md §2.3, §3)."""

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
_FB = "preprocessor.featurizer.0.mel_scale.fb"
_WINDOW = "preprocessor.featurizer.0.spectrogram.window"
_SUB0 = "encoder.pre_encode.conv.0.weight"
_LAYER0 = "encoder.layers.0."
_CTC = "head.decoder_layers.0."
_EMBED = "head.decoder.embed.weight"


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


class _Weights:
    """What the tensor shapes say about the architecture; None where they are silent."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.shapes = shapes

    def dim(self, key: str, axis: int) -> int | None:
        shape = self.shapes.get(key)
        if shape is None or not -len(shape) <= axis < len(shape):
            return None
        return shape[axis]

    def ndim(self, key: str) -> int | None:
        shape = self.shapes.get(key)
        return None if shape is None else len(shape)

    def count(self, pattern: re.Pattern[str]) -> int | None:
        """How many distinct indices the keys matching `pattern` carry (None for none)."""
        found = {int(m.group(1)) for key in self.shapes if (m := pattern.match(key))}
        return len(found) or None

    def has(self, *suffixes: str) -> bool:
        return any(key.endswith(suffixes) for key in self.shapes)


Values = dict[str, Any]
"""Fields resolved so far (plus context such as n_mels), by name."""


@dataclass(frozen=True)
class _Field:
    """One architecture field: where the cfg keeps it, what the weights say, the fallback.

    key: the cfg key, and the field's name unless `name` says otherwise. weights: reads the
    value off the tensor shapes, given the fields resolved before it (None = silent). default:
    upstream's value when cfg and weights are both silent; default_from copies an earlier field
    instead. choices: the allowed values of a string field; kind: the type of any other field.
    section: the cfg sub-section holding the key (the RNN-T head's `decoder` and `joint`).
    """

    key: str
    weights: Callable[[_Weights, Values], Any] = lambda w, v: None
    default: Any = None
    default_from: str = ""
    choices: tuple[str, ...] = ()
    kind: type = int
    section: str = ""
    name: str = ""


def _resolve(reader: _Reader, table: tuple[_Field, ...], weights: _Weights, values: Values) -> None:
    """Resolve each field in order into `values`: cfg and weights must agree, else a fallback."""
    for field in table:
        section = reader.sub(field.section, required=False) if field.section else reader
        if field.choices:
            from_cfg: Any = section.choice(field.key, field.choices)
        else:
            from_cfg = section.get(field.key, field.kind)
        default = values[field.default_from] if field.default_from else field.default
        values[field.name or field.key] = section.resolve(
            field.key, from_cfg, field.weights(weights, values), default
        )


def _build(cls: type[_T], values: Values) -> _T:
    """The config dataclass `cls` from the resolved values its fields name."""
    return cls(**{f.name: values[f.name] for f in fields(cls)})  # type: ignore[arg-type]


# Readers of the weights' evidence, one per field that the tensor shapes reveal.
_Evidence = Callable[[_Weights, Values], Any]


def _dim(key: str, axis: int) -> _Evidence:
    return lambda w, v: w.dim(key, axis)


def _count(pattern: re.Pattern[str]) -> _Evidence:
    return lambda w, v: w.count(pattern)


def _same_as(name: str) -> _Evidence:
    return lambda w, v: v[name]


def _n_fft(w: _Weights, v: Values) -> int | None:
    bins = w.dim(_FB, 0)
    return None if bins is None else (bins - 1) * 2


def _subsampling(w: _Weights, v: Values) -> str | None:
    return {3: "conv1d", 4: "conv2d"}.get(w.ndim(_SUB0) or 0)


def _conv1d_input(w: _Weights, v: Values) -> int | None:
    # conv2d folds the mel axis into its Linear's input; the network's shape check covers that.
    return w.dim(_SUB0, 1) if v["subsampling"] == "conv1d" else None


def _subsampling_factor(w: _Weights, v: Values) -> int | None:
    stages = w.count(_SUBSAMPLING_CONV_KEY)
    return None if stages is None else 2**stages


def _ff_expansion(w: _Weights, v: Values) -> int | None:
    d_ff = w.dim(_LAYER0 + "feed_forward1.linear1.weight", 0)
    return None if d_ff is None or d_ff % v["d_model"] else d_ff // v["d_model"]


def _attention(w: _Weights, v: Values) -> str | None:
    if not w.count(_LAYER_KEY):
        return None
    return "rel_pos" if w.has("self_attn.linear_pos.weight", "self_attn.pos_bias_u") else "rotary"


def _conv_norm(w: _Weights, v: Values) -> str | None:
    if not w.count(_LAYER_KEY):
        return None
    return "batch_norm" if w.has("conv.batch_norm.running_mean") else "layer_norm"


# Each table lists a section's fields in resolution order: cfg key, weights' evidence, default.
# Feature defaults are what the v1/v2 FeatureExtractor hard-coded at 16 kHz (sr//40, sr//100).
_FEATURES = (
    _Field("features", _dim(_FB, 1), 64, name="n_mels"),
    _Field("n_fft", _n_fft, 400),
    _Field("win_length", _dim(_WINDOW, 0), 400),
    _Field("hop_length", default=160),
    _Field("center", default=True, kind=bool),
)

_ENCODER = (
    _Field("d_model", _dim(_LAYER0 + "norm_out.weight", 0)),
    _Field("n_layers", _count(_LAYER_KEY)),
    _Field("subsampling", _subsampling, "conv2d", choices=("conv1d", "conv2d")),
    _Field("feat_in", _conv1d_input, default_from="n_mels"),
    _Field("subs_kernel_size", _dim(_SUB0, -1), 3),
    _Field("subsampling_factor", _subsampling_factor, 4),
    _Field("ff_expansion_factor", _ff_expansion, 4),
    _Field("self_attention_model", _attention, "rotary", choices=("rotary", "rel_pos")),
    _Field("n_heads", _dim(_LAYER0 + "self_attn.pos_bias_u", 0)),
    _Field("conv_norm_type", _conv_norm, "batch_norm", choices=("batch_norm", "layer_norm")),
    _Field("conv_kernel_size", _dim(_LAYER0 + "conv.depthwise_conv.weight", 2), 31),
    _Field("pos_emb_max_len", default=5000),
)

_CTC_HEAD = (
    _Field("feat_in", _dim(_CTC + "weight", 1), default_from="d_model"),
    _Field("num_classes", _dim(_CTC + "bias", 0)),
)

_RNNT_HEAD = (
    _Field("num_classes", _dim(_EMBED, 0), section="decoder"),
    _Field("pred_hidden", _dim(_EMBED, 1), section="decoder"),
    _Field("pred_rnn_layers", _count(_LSTM_LAYER_KEY), 1, section="decoder"),
    # The joint repeats two of the decoder's sizes; they must agree.
    _Field("num_classes", _same_as("num_classes"), section="joint", name="joint_classes"),
    _Field("pred_hidden", _same_as("pred_hidden"), section="joint", name="joint_pred"),
    _Field("enc_hidden", _dim("head.joint.enc.weight", 1), section="joint", default_from="d_model"),
    _Field("joint_hidden", _dim("head.joint.pred.weight", 0), section="joint"),
)


def _parse_features(top: _Reader, weights: _Weights) -> FeatureConfig:
    pre = top.sub("preprocessor", required=True)
    sample_rate = pre.get("sample_rate", int) or top.get("sample_rate", int) or 16_000
    if sample_rate != 16_000:
        raise top.fail(f"sample_rate {sample_rate} is not supported (only 16000 Hz)")
    values: Values = {"sample_rate": sample_rate}
    _resolve(pre, _FEATURES, weights, values)
    if values["win_length"] != values["n_fft"]:
        raise pre.fail(
            f"win_length {values['win_length']} differs from n_fft {values['n_fft']}; not supported"
        )
    if values["hop_length"] <= 0 or values["n_mels"] <= 0:
        raise pre.fail("hop_length and features must be positive")
    return _build(FeatureConfig, values)


def _parse_encoder(top: _Reader, weights: _Weights, n_mels: int) -> EncoderConfig:
    enc = top.sub("encoder", required=True)
    values: Values = {"n_mels": n_mels}
    _resolve(enc, _ENCODER, weights, values)
    if values["feat_in"] != n_mels:
        raise enc.fail(f"feat_in {values['feat_in']} differs from the {n_mels} mel features")
    if values["d_model"] % values["n_heads"]:
        raise enc.fail(
            f"d_model {values['d_model']} is not divisible by n_heads {values['n_heads']}"
        )
    if values["conv_kernel_size"] % 2 == 0:
        raise enc.fail(f"conv_kernel_size {values['conv_kernel_size']} must be odd")
    return _build(EncoderConfig, values)


def _head_kind(top: _Reader, head: _Reader, weights: _Weights) -> str:
    """'ctc' or 'rnnt', from the head's `_target_` class and from which tensors exist."""
    target = head.get("_target_", str) or ""
    from_cfg = {"CTCHead": "ctc", "RNNTHead": "rnnt"}.get(target.rsplit(".", 1)[-1])
    from_weights = (
        "rnnt" if _EMBED in weights.shapes else "ctc" if _CTC + "weight" in weights.shapes else None
    )
    if from_cfg is None and from_weights is None:
        raise top.fail(
            f"it has no CTC or RNN-T head (head target {target!r}; an SSL or emotion model?)"
        )
    return head.resolve("_target_", from_cfg, from_weights, None)


def _parse_head(top: _Reader, weights: _Weights, d_model: int) -> CtcHeadConfig | RnntHeadConfig:
    head = top.sub("head", required=False)
    values: Values = {"d_model": d_model}
    if _head_kind(top, head, weights) == "ctc":
        _resolve(head, _CTC_HEAD, weights, values)
        if values["feat_in"] != d_model:
            raise head.fail(f"CTC head feat_in {values['feat_in']} differs from d_model {d_model}")
        return _build(CtcHeadConfig, values)
    _resolve(head, _RNNT_HEAD, weights, values)
    if values["enc_hidden"] != d_model:
        raise head.fail(f"joint enc_hidden {values['enc_hidden']} differs from d_model {d_model}")
    return _build(RnntHeadConfig, values)


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
    the weights contradict is a CheckpointError. Whether every tensor fits is checked against
    the network built from the result (checkpoint.load_checkpoint).
    """
    top = _Reader(name, "", cfg)
    weights = _Weights(shapes)
    features = _parse_features(top, weights)
    encoder = _parse_encoder(top, weights, features.n_mels)
    head = _parse_head(top, weights, encoder.d_model)
    decoding = _parse_decoding(top, head.num_classes)
    return ModelConfig(name=name, features=features, encoder=encoder, head=head, decoding=decoding)
