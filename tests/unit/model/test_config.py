"""parse_model_config: cfg fields, defaults, detection from tensor shapes, contradictions."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from gigaam_api.errors import CheckpointError
from gigaam_api.model.config import (
    CtcHeadConfig,
    DecodingConfig,
    EncoderConfig,
    FeatureConfig,
    ModelConfig,
    RnntHeadConfig,
    parse_model_config,
)
from testkit.checkpoints import RUSSIAN_CHARS

Shapes = dict[str, tuple[int, ...]]


def _parts(path: Path) -> tuple[dict[str, Any], Shapes]:
    """The cfg as plain containers and the tensor shapes of a fixture checkpoint."""
    top = torch.load(path, weights_only=False)  # only files the test suite wrote
    cfg = OmegaConf.to_container(top["cfg"])
    assert isinstance(cfg, dict)
    return {str(k): v for k, v in cfg.items()}, {
        key: tuple(value.shape) for key, value in top["state_dict"].items()
    }


@pytest.fixture
def v1(tiny_checkpoints: dict[str, Path]) -> tuple[dict[str, Any], Shapes]:
    return _parts(tiny_checkpoints["v1_ctc"])


@pytest.fixture
def v3(tiny_checkpoints: dict[str, Path]) -> tuple[dict[str, Any], Shapes]:
    return _parts(tiny_checkpoints["v3_rnnt"])


def test_v3_cfg_is_read_field_by_field(v3: tuple[dict[str, Any], Shapes]) -> None:
    cfg, shapes = v3
    config = parse_model_config(cfg, shapes, name="v3_rnnt")
    assert config == ModelConfig(
        name="v3_rnnt",
        features=FeatureConfig(16_000, 64, 320, 320, 160, center=False),
        encoder=EncoderConfig(
            feat_in=64,
            n_layers=2,
            d_model=32,
            n_heads=4,
            subsampling="conv1d",
            subs_kernel_size=5,
            subsampling_factor=4,
            ff_expansion_factor=4,
            self_attention_model="rotary",
            pos_emb_max_len=5000,
            conv_norm_type="layer_norm",
            conv_kernel_size=5,
        ),
        head=RnntHeadConfig(
            pred_hidden=24, pred_rnn_layers=1, enc_hidden=32, joint_hidden=24, num_classes=34
        ),
        decoding=DecodingConfig(RUSSIAN_CHARS, max_symbols_per_step=10, vocab_size=33),
    )


def test_v1_defaults_fill_absent_fields(v1: tuple[dict[str, Any], Shapes]) -> None:
    cfg, shapes = v1
    assert "n_fft" not in cfg["preprocessor"] and "subsampling" not in cfg["encoder"]
    config = parse_model_config(cfg, shapes, name="v1_ctc")
    assert config.features == FeatureConfig(16_000, 64, 400, 400, 160, center=True)
    assert config.encoder.subsampling == "conv2d"
    assert config.encoder.subs_kernel_size == 3
    assert config.encoder.conv_norm_type == "batch_norm"
    assert config.encoder.self_attention_model == "rel_pos"
    assert config.head == CtcHeadConfig(feat_in=32, num_classes=34)


def test_attention_and_norm_detected_from_weights_when_cfg_is_silent(
    v1: tuple[dict[str, Any], Shapes], v3: tuple[dict[str, Any], Shapes]
) -> None:
    cfg, shapes = copy.deepcopy(v1)
    del cfg["encoder"]["self_attention_model"]  # rel_pos only visible through linear_pos keys
    assert parse_model_config(cfg, shapes, name="x").encoder.self_attention_model == "rel_pos"

    cfg, shapes = copy.deepcopy(v3)
    for key in ("subsampling", "subs_kernel_size", "conv_norm_type", "self_attention_model"):
        del cfg["encoder"][key]  # the package defaults (conv2d, 3, batch_norm) would be wrong
    encoder = parse_model_config(cfg, shapes, name="x").encoder
    assert (encoder.subsampling, encoder.subs_kernel_size) == ("conv1d", 5)
    assert (encoder.conv_norm_type, encoder.self_attention_model) == ("layer_norm", "rotary")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("encoder", "self_attention_model", "rotary", "'rotary' but the weights imply 'rel_pos'"),
        ("encoder", "conv_norm_type", "layer_norm", "weights imply 'batch_norm'"),
        ("encoder", "subsampling", "conv1d", "weights imply 'conv2d'"),
        ("encoder", "conv_kernel_size", 5, "conv_kernel_size = 5 but the weights imply 31"),
        ("encoder", "n_layers", 16, "n_layers = 16 but the weights imply 2"),
        ("encoder", "n_layers", "16", "'16' is not a int"),
        ("encoder", "conv_norm_type", "group_norm", "not one of"),
        ("head", "num_classes", 35, "num_classes = 35 but the weights imply 34"),
        ("preprocessor", "n_fft", 512, "n_fft = 512 but the weights imply 400"),
    ],
)
def test_contradictions_are_checkpoint_errors(
    v1: tuple[dict[str, Any], Shapes], section: str, key: str, value: object, message: str
) -> None:
    cfg, shapes = copy.deepcopy(v1)
    cfg[section][key] = value
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(")):
        parse_model_config(cfg, shapes, name="v1_ctc")


def test_vocabulary_must_fit_the_head(v3: tuple[dict[str, Any], Shapes]) -> None:
    cfg, shapes = copy.deepcopy(v3)
    cfg["decoding"]["vocabulary"] = cfg["decoding"]["vocabulary"][:-1]
    with pytest.raises(CheckpointError, match="32 characters but the head has 34 classes"):
        parse_model_config(cfg, shapes, name="v3_rnnt")


def test_v2_labels_stand_in_for_the_vocabulary(tiny_checkpoints: dict[str, Path]) -> None:
    cfg, shapes = _parts(tiny_checkpoints["v2_ctc"])
    del cfg["decoding"]["vocabulary"]
    config = parse_model_config(cfg, shapes, name="v2_ctc")
    assert config.decoding.vocabulary == RUSSIAN_CHARS
    assert not config.uses_sentencepiece


def test_sentencepiece_models_have_no_vocabulary(tiny_checkpoints: dict[str, Path]) -> None:
    cfg, shapes = _parts(tiny_checkpoints["v3_e2e_rnnt"])
    config = parse_model_config(cfg, shapes, name="v3_e2e_rnnt")
    assert config.decoding == DecodingConfig(None, max_symbols_per_step=10, vocab_size=384)
    assert config.uses_sentencepiece


def test_missing_sections_and_unknown_sample_rate(v3: tuple[dict[str, Any], Shapes]) -> None:
    cfg, shapes = copy.deepcopy(v3)
    del cfg["encoder"]
    with pytest.raises(CheckpointError, match="cfg encoder is missing"):
        parse_model_config(cfg, shapes, name="v3_rnnt")
    cfg, shapes = copy.deepcopy(v3)
    cfg["preprocessor"]["sample_rate"] = 8000
    with pytest.raises(CheckpointError, match="sample_rate 8000 is not supported"):
        parse_model_config(cfg, shapes, name="v3_rnnt")


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("joint", "num_classes", 35, "head.joint.num_classes = 35 but the weights imply 34"),
        ("joint", "pred_hidden", 25, "head.joint.pred_hidden = 25 but the weights imply 24"),
        ("joint", "enc_hidden", 31, "head.joint.enc_hidden = 31 but the weights imply 32"),
        ("decoder", "pred_rnn_layers", 2, "pred_rnn_layers = 2 but the weights imply 1"),
    ],
)
def test_rnnt_head_sections_must_agree_with_the_weights(
    v3: tuple[dict[str, Any], Shapes], section: str, key: str, value: int, message: str
) -> None:
    cfg, shapes = copy.deepcopy(v3)
    cfg["head"][section][key] = value
    with pytest.raises(CheckpointError, match=message):
        parse_model_config(cfg, shapes, name="v3_rnnt")


def test_silent_cfg_is_read_entirely_from_the_weights(v3: tuple[dict[str, Any], Shapes]) -> None:
    cfg, shapes = copy.deepcopy(v3)
    expected = parse_model_config(cfg, shapes, name="v3_rnnt")
    # Only what no tensor shows stays: rotary attention has no per-head tensor, v3 no centering.
    cfg["encoder"] = {"n_heads": cfg["encoder"]["n_heads"]}
    cfg["head"] = {"_target_": cfg["head"]["_target_"]}
    cfg["preprocessor"] = {"center": False}
    assert parse_model_config(cfg, shapes, name="v3_rnnt") == expected
