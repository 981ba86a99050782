"""The documented Python API: exported names, loading by path or official name, the example."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import numpy as np
import pytest

from gigaam_api import asr, weights
from gigaam_api.engines.onnx import OnnxEngine
from gigaam_api.engines.pytorch import TorchEngine
from gigaam_api.errors import UnknownModelError
from gigaam_api.weights import OfficialModel
from testkit.checkpoints import tokenizer_path_for
from tests.fixtures.cdn import FakeCdn

AUDIO = np.random.default_rng(0).normal(0.0, 0.1, 24_000).astype(np.float32)


def test_public_names() -> None:
    assert sorted(asr.__all__) == [
        "ChunkResult", "NetworkEngine", "OFFICIAL_WEIGHTS_URL", "Word", "load_model",
    ]  # fmt: skip
    for name in asr.__all__:
        assert hasattr(asr, name)


@pytest.mark.parametrize(
    ("engine", "expected"), [("auto", OnnxEngine), ("onnx", OnnxEngine), ("torch", TorchEngine)]
)
def test_load_by_local_path(
    tiny_checkpoints: dict[str, Path], engine: str, expected: type[object]
) -> None:
    path = tiny_checkpoints["v3_e2e_ctc"]
    model = asr.load_model(str(path), engine=engine, device="cpu")
    assert isinstance(model, expected)  # auto on a CPU is ONNX Runtime
    assert (model.model_id, model.device) == ("v3_e2e_ctc", "cpu")
    direct = TorchEngine.from_files(path, tokenizer_path_for(path), model_id="x", device="cpu")
    [result] = model.transcribe_batch([AUDIO])
    assert result.text and result.text == direct.transcribe_batch([AUDIO])[0].text


def test_load_by_official_name_downloads_into_models_dir(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_checkpoints: dict[str, Path],
) -> None:
    path = tiny_checkpoints["v3_e2e_ctc"]
    data = path.read_bytes()
    monkeypatch.setitem(
        weights.OFFICIAL_MODELS,
        "v3_e2e_ctc",
        OfficialModel("v3_e2e_ctc", hashlib.md5(data).hexdigest(), needs_tokenizer=True),
    )
    fake_cdn.serve("v3_e2e_ctc.ckpt", data)
    fake_cdn.serve("v3_e2e_ctc_tokenizer.model", tokenizer_path_for(path).read_bytes())
    model = asr.load_model("e2e_ctc", engine="torch", models_dir=tmp_path, weights_url=fake_cdn.url)
    assert model.model_id == "v3_e2e_ctc"
    assert (tmp_path / "v3_e2e_ctc.ckpt").read_bytes() == data
    assert (tmp_path / "v3_e2e_ctc_tokenizer.model").is_file()
    local = asr.load_model(str(path), engine="torch")
    assert model.transcribe_batch([AUDIO]) == local.transcribe_batch([AUDIO])


def test_unknown_model_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match="neither an official model"):
        asr.load_model("v9_nonexistent", models_dir=tmp_path)


def test_the_docstring_example_runs(tiny_checkpoints: dict[str, Path]) -> None:
    doc = asr.__doc__ or ""
    example = textwrap.dedent(doc.split("::", 1)[1].split("\nLong recordings", 1)[0])
    assert 'load_model("v3_ctc"' in example
    local = example.replace('"v3_ctc"', repr(str(tiny_checkpoints["v3_ctc"])))
    namespace: dict[str, object] = {"print": lambda *_: None}
    exec(compile(local, "asr-example", "exec"), namespace)
    assert namespace["outputs"] is not None and namespace["frames"] is not None
