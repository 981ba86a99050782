"""A GigaAM checkpoint's architecture as explicit dataclasses (no hydra, no `_target_` execution).

parse_model_config() reads the checkpoint's cfg (already converted to plain dicts/lists) together
with the state_dict's shapes; the nn.Modules are built from these dataclasses alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
    """vocabulary: the characters of a char model; None means a SentencePiece tokenizer file."""

    vocabulary: tuple[str, ...] | None
    max_symbols_per_step: int = 10


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
