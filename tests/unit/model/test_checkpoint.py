"""load_checkpoint on official-format files: every family, dtypes, refusal of unsafe pickles."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from gigaam_api.errors import CheckpointError, UnsafeCheckpointError
from gigaam_api.model.checkpoint import Checkpoint, load_checkpoint, tensor_shapes
from gigaam_api.model.config import (
    CtcHeadConfig,
    DecodingConfig,
    EncoderConfig,
    FeatureConfig,
    ModelConfig,
    RnntHeadConfig,
)
from gigaam_api.model.gigaam import GigaAM
from testkit.checkpoints import FAMILIES, RUSSIAN_CHARS, write_checkpoint

# family: (subsampling, attention, conv norm, conv kernel, n_fft, center, head, num_classes)
EXPECTED = {
    "v1_ctc": ("conv2d", "rel_pos", "batch_norm", 31, 400, True, "ctc", 34),
    "v1_rnnt": ("conv2d", "rel_pos", "batch_norm", 31, 400, True, "rnnt", 129),
    "v2_ctc": ("conv2d", "rotary", "batch_norm", 31, 400, True, "ctc", 34),
    "v2_rnnt": ("conv2d", "rotary", "batch_norm", 31, 400, True, "rnnt", 34),
    "v3_ctc": ("conv1d", "rotary", "layer_norm", 5, 320, False, "ctc", 34),
    "v3_rnnt": ("conv1d", "rotary", "layer_norm", 5, 320, False, "rnnt", 34),
    "v3_e2e_ctc": ("conv1d", "rotary", "layer_norm", 5, 320, False, "ctc", 161),
    "v3_e2e_rnnt": ("conv1d", "rotary", "layer_norm", 5, 320, False, "rnnt", 385),
    "multilingual_ctc": ("conv1d", "rotary", "layer_norm", 5, 320, False, "ctc", 71),
}


def _trusted_load(path: Path) -> dict[str, Any]:
    """The file as torch itself reads it (only for files this test suite wrote)."""
    loaded: dict[str, Any] = torch.load(path, weights_only=False)
    return loaded


def _load(path: Path) -> Checkpoint[GigaAM]:
    return load_checkpoint(path, GigaAM)


def _loaded_tensors(path: Path) -> dict[str, torch.Tensor]:
    return _load(path).network.state_dict()


def _resave(source: Path, target: Path, mutate: Callable[[dict[str, Any]], dict[str, Any]]) -> Path:
    torch.save(mutate(_trusted_load(source)), target)
    return target


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_loads_with_its_architecture(
    family: str, tiny_checkpoints: dict[str, Path]
) -> None:
    path = tiny_checkpoints[family]
    checkpoint = _load(path)
    config = checkpoint.config
    subsampling, attention, norm, kernel, n_fft, center, kind, classes = EXPECTED[family]

    assert config.name == family
    assert (config.encoder.subsampling, config.encoder.self_attention_model) == (
        subsampling,
        attention,
    )
    assert (config.encoder.conv_norm_type, config.encoder.conv_kernel_size) == (norm, kernel)
    assert (config.encoder.d_model, config.encoder.n_layers, config.encoder.n_heads) == (32, 2, 4)
    assert (config.features.n_fft, config.features.win_length, config.features.center) == (
        n_fft,
        n_fft,
        center,
    )
    assert config.kind == kind
    assert config.head.num_classes == classes
    assert config.blank_id == classes - 1
    assert config.uses_sentencepiece == (family in ("v1_rnnt", "v3_e2e_ctc", "v3_e2e_rnnt"))
    if isinstance(config.head, RnntHeadConfig):
        assert (config.head.pred_hidden, config.head.joint_hidden) == (24, 24)

    reference = _trusted_load(path)["state_dict"]
    tensors = checkpoint.network.state_dict()
    assert sorted(tensors) == sorted(reference)
    for key, tensor in reference.items():
        loaded = tensors[key]
        if tensor.is_floating_point():
            assert loaded.dtype == torch.float32, key
            assert torch.equal(loaded, tensor.float()), key
        else:
            assert loaded.dtype == tensor.dtype and torch.equal(loaded, tensor), key


def test_fp16_and_bf16_tensors_come_out_fp32(tiny_checkpoints: dict[str, Path]) -> None:
    path = tiny_checkpoints["v3_rnnt"]
    stored = _trusted_load(path)["state_dict"]
    key = "encoder.layers.1.self_attn.linear_q.weight"
    assert stored[key].dtype == torch.float16
    assert stored["preprocessor.featurizer.0.mel_scale.fb"].dtype == torch.float32

    loaded = _loaded_tensors(path)
    assert loaded[key].dtype == torch.float32
    assert torch.equal(loaded[key], stored[key].float())
    # v3 stores its window bf16-rounded: the value survives, the container stays fp32.
    window = loaded["preprocessor.featurizer.0.spectrogram.window"]
    assert torch.equal(window, window.bfloat16().float())


def test_bf16_storage_is_read(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    def to_bf16(top: dict[str, Any]) -> dict[str, Any]:
        top["state_dict"]["head.decoder_layers.0.weight"] = top["state_dict"][
            "head.decoder_layers.0.weight"
        ].bfloat16()
        return top

    path = _resave(tiny_checkpoints["v3_ctc"], tmp_path / "bf16.ckpt", to_bf16)
    weight = _loaded_tensors(path)["head.decoder_layers.0.weight"]
    original = _trusted_load(tiny_checkpoints["v3_ctc"])["state_dict"]
    assert weight.dtype == torch.float32
    assert torch.equal(weight, original["head.decoder_layers.0.weight"].bfloat16().float())


def test_model_name_from_cfg_else_file_stem(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    renamed_v3 = tmp_path / "finetuned.ckpt"
    renamed_v3.write_bytes(tiny_checkpoints["v3_ctc"].read_bytes())
    renamed_v1 = tmp_path / "old-model.ckpt"
    renamed_v1.write_bytes(tiny_checkpoints["v1_ctc"].read_bytes())
    assert _load(renamed_v3).config.name == "v3_ctc"  # cfg carries model_name
    assert _load(renamed_v1).config.name == "old-model"  # v1 cfg has none


class _Payload:
    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return self.function, self.args


@pytest.mark.parametrize("via", ["os.system", "builtins.eval"])
def test_malicious_pickle_is_refused_without_running(
    via: str, tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    marker = tmp_path / "pwned"
    payload = (
        _Payload(os.system, f"touch {marker}")
        if via == "os.system"
        else _Payload(eval, f"__import__('pathlib').Path({str(marker)!r}).touch()")
    )
    top = _trusted_load(tiny_checkpoints["v3_ctc"])
    top["cfg"] = OmegaConf.to_container(top["cfg"])
    top["cfg"]["encoder"]["d_model"] = payload  # hidden deep inside the cfg
    path = tmp_path / "evil.ckpt"
    torch.save(top, path)

    with pytest.raises(
        UnsafeCheckpointError, match=r"(posix|os|builtins|__builtin__)\.(system|eval)"
    ):
        _load(path)
    assert not marker.exists()

    # The payload is live: a plain unpickler runs it (proving the refusal is what saved us).
    with zipfile.ZipFile(path) as archive:
        data = archive.read("evil/data.pkl")
    with pytest.raises(pickle.UnpicklingError):  # stops at the first tensor, after the payload
        pickle.loads(data)
    assert marker.exists()


def test_garbage_truncated_and_missing_files(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    data = tiny_checkpoints["v3_ctc"].read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint" * 100)
    for path in (truncated, garbage):
        with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
            _load(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        _load(tmp_path / "absent.ckpt")


def test_corrupt_pickle_inside_a_valid_zip(tmp_path: Path) -> None:
    path = tmp_path / "broken.ckpt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("broken/data.pkl", b"\x80\x02}q\x00(X\x03\x00\x00")
        archive.writestr("broken/byteorder", b"little")
    with pytest.raises(CheckpointError, match="pickle is corrupt"):
        _load(path)
    empty = tmp_path / "empty.ckpt"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("empty/version", b"3\n")
    with pytest.raises(CheckpointError, match=r"one \*/data.pkl"):
        _load(empty)


def test_state_dict_without_cfg_is_refused(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    path = tmp_path / "pytorch_model.bin"
    torch.save(_trusted_load(tiny_checkpoints["v3_ctc"])["state_dict"], path)
    with pytest.raises(CheckpointError, match="no `state_dict`"):
        _load(path)
    torch.save({"state_dict": _trusted_load(tiny_checkpoints["v3_ctc"])["state_dict"]}, path)
    with pytest.raises(CheckpointError, match="no `cfg`"):
        _load(path)


def test_missing_unexpected_and_misshaped_tensors(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    def damage(top: dict[str, Any]) -> dict[str, Any]:
        state = top["state_dict"]
        del state["encoder.layers.1.norm_out.bias"]
        state["encoder.layers.0.extra.weight"] = torch.zeros(3)
        state["encoder.layers.1.self_attn.linear_k.weight"] = torch.zeros(32, 31)
        return top

    path = _resave(tiny_checkpoints["v3_ctc"], tmp_path / "damaged.ckpt", damage)
    with pytest.raises(CheckpointError) as caught:
        _load(path)
    message = str(caught.value)
    assert "1 missing: encoder.layers.1.norm_out.bias" in message
    assert "1 unexpected: encoder.layers.0.extra.weight" in message
    assert "encoder.layers.1.self_attn.linear_k.weight (32, 31) (expected (32, 32))" in message


def test_cfg_contradicting_weights(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    def lie(top: dict[str, Any]) -> dict[str, Any]:
        top["cfg"].encoder.d_model = 64
        return top

    path = _resave(tiny_checkpoints["v3_ctc"], tmp_path / "lie.ckpt", lie)
    with pytest.raises(CheckpointError, match=r"encoder\.d_model = 64 but the weights imply 32"):
        _load(path)


def test_prefixed_lightning_and_interpolated_layouts(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    source = tiny_checkpoints["v3_rnnt"]
    expected = _load(source)

    def hugging_face_names(top: dict[str, Any]) -> dict[str, Any]:
        top["state_dict"] = OrderedDict((f"model.{k}", v) for k, v in top["state_dict"].items())
        return top

    def lightning(top: dict[str, Any]) -> dict[str, Any]:
        state = OrderedDict(top["state_dict"])
        state["loss.blank_weight"] = torch.zeros(1)  # training-only state beside the model
        return {
            "epoch": 3,
            "global_step": 1200,
            "hyper_parameters": {"model_name": "v3_rnnt", "model_cfg": top["cfg"]},
            "state_dict": state,
            "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(2)}}}],
        }

    def interpolated(top: dict[str, Any]) -> dict[str, Any]:
        cfg = OmegaConf.to_container(top["cfg"])
        assert isinstance(cfg, dict)
        cfg["head"]["joint"]["enc_hidden"] = "${encoder.d_model}"
        top["cfg"] = OmegaConf.create(cfg)
        return top

    for mutate in (hugging_face_names, lightning, interpolated):
        loaded = _load(_resave(source, tmp_path / f"{mutate.__name__}.ckpt", mutate))
        assert loaded.config == expected.config
        tensors, expected_tensors = loaded.network.state_dict(), expected.network.state_dict()
        assert tensors.keys() == expected_tensors.keys()
        assert all(torch.equal(tensors[k], v) for k, v in expected_tensors.items())


def test_ssl_checkpoint_is_not_an_asr_model(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    def strip_head(top: dict[str, Any]) -> dict[str, Any]:
        cfg = OmegaConf.to_container(top["cfg"])
        assert isinstance(cfg, dict)
        for key in ("head", "decoding", "model_class"):
            del cfg[key]
        top["cfg"] = OmegaConf.create(cfg)
        top["state_dict"] = OrderedDict(
            (k, v) for k, v in top["state_dict"].items() if not k.startswith("head.")
        )
        return top

    path = _resave(tiny_checkpoints["v3_ctc"], tmp_path / "v3_ssl.ckpt", strip_head)
    with pytest.raises(CheckpointError, match="no CTC or RNN-T head"):
        _load(path)


def test_buffer_saved_archive_prefix(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    buffer = io.BytesIO()
    torch.save(_trusted_load(tiny_checkpoints["v2_ctc"]), buffer)  # prefix becomes "archive/"
    path = tmp_path / "from-buffer.ckpt"
    path.write_bytes(buffer.getvalue())
    assert isinstance(_load(path).config.head, CtcHeadConfig)


def test_reseeded_checkpoints_differ(tmp_path: Path) -> None:
    first = _load(write_checkpoint(tmp_path / "a.ckpt", "v3_ctc", seed=1))
    second = _load(write_checkpoint(tmp_path / "b.ckpt", "v3_ctc", seed=2))
    key = "encoder.layers.0.feed_forward1.linear1.weight"
    assert first.config.encoder == second.config.encoder
    first_tensors = first.network.state_dict()
    assert not torch.equal(first_tensors[key], second.network.state_dict()[key])
    assert all(torch.isfinite(t).all() for t in first_tensors.values() if t.is_floating_point())


def _without_tensor_data(source: Path, target: Path) -> Path:
    """A copy of the archive with every tensor's bytes (`*/data/<n>`) left out."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if "/data/" not in info.filename:
                new.writestr(info, old.read(info))
    return target


def test_shapes_are_checked_before_any_tensor_bytes_are_read(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    def misshape(top: dict[str, Any]) -> dict[str, Any]:
        top["state_dict"]["encoder.layers.1.self_attn.linear_k.weight"] = torch.zeros(32, 31)
        return top

    intact = _without_tensor_data(tiny_checkpoints["v3_ctc"], tmp_path / "intact.ckpt")
    with pytest.raises(CheckpointError, match="lacks tensor data"):
        _load(intact)  # a checkpoint that fits does go on to read its bytes
    damaged = _resave(tiny_checkpoints["v3_ctc"], tmp_path / "damaged.ckpt", misshape)
    hollow = _without_tensor_data(damaged, tmp_path / "hollow.ckpt")
    with pytest.raises(
        CheckpointError, match=r"linear_k\.weight \(32, 31\) \(expected \(32, 32\)\)"
    ):
        _load(hollow)


def _full_size(attention: str, norm: str, subsampling: str, head: str) -> ModelConfig:
    v3_like = subsampling == "conv1d"
    return ModelConfig(
        name="full",
        features=FeatureConfig(16_000, 64, 320 if v3_like else 400, 320 if v3_like else 400),
        encoder=EncoderConfig(
            feat_in=64,
            n_layers=16,
            d_model=768,
            n_heads=16,
            subsampling="conv1d" if v3_like else "conv2d",
            subs_kernel_size=5 if v3_like else 3,
            subsampling_factor=4,
            ff_expansion_factor=4,
            self_attention_model="rel_pos" if attention == "rel_pos" else "rotary",
            pos_emb_max_len=5000,
            conv_norm_type="layer_norm" if norm == "layer_norm" else "batch_norm",
            conv_kernel_size=5 if v3_like else 31,
        ),
        head=CtcHeadConfig(768, 34) if head == "ctc" else RnntHeadConfig(320, 1, 768, 320, 34),
        decoding=DecodingConfig(RUSSIAN_CHARS, vocab_size=33),
    )


def _meta_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        return tensor_shapes(GigaAM(config))


def test_the_network_expects_the_published_tensor_layout() -> None:
    # docs/gigaam.md §4: v3_ctc holds 552 tensors, v3_rnnt 561, a v1-style CTC (rel_pos,
    # BatchNorm, conv2d subsampling) 650.
    v3_ctc = _meta_shapes(_full_size("rotary", "layer_norm", "conv1d", "ctc"))
    v3_rnnt = _meta_shapes(_full_size("rotary", "layer_norm", "conv1d", "rnnt"))
    v1_ctc = _meta_shapes(_full_size("rel_pos", "batch_norm", "conv2d", "ctc"))
    assert (len(v3_ctc), len(v3_rnnt), len(v1_ctc)) == (552, 561, 650)
    assert v1_ctc["encoder.pre_encode.out.weight"] == (768, 12288)
    assert v3_ctc["preprocessor.featurizer.0.mel_scale.fb"] == (161, 64)
    assert v3_ctc["encoder.pre_encode.conv.2.weight"] == (768, 768, 5)
    assert v1_ctc["encoder.layers.15.self_attn.pos_bias_u"] == (16, 48)
    assert v1_ctc["encoder.layers.15.conv.batch_norm.num_batches_tracked"] == ()
    assert v3_rnnt["head.decoder.lstm.weight_ih_l0"] == (1280, 320)
    assert v3_rnnt["head.joint.joint_net.1.weight"] == (34, 320)
