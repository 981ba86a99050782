"""ENGINE × DEVICE → the engine, decided without importing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gigaam_api.engines import selection
from gigaam_api.engines.selection import choose_engine
from gigaam_api.errors import ModelError


@pytest.mark.parametrize(
    ("engine", "device", "accelerator", "chosen"),
    [
        ("auto", "cpu", True, "onnx"),
        ("auto", "cuda", False, "torch"),
        ("auto", "mps", False, "torch"),
        ("auto", "auto", False, "onnx"),
        ("auto", "auto", True, "torch"),
        ("onnx", "auto", True, "onnx"),
        ("onnx", "cpu", False, "onnx"),
        ("torch", "cpu", False, "torch"),
        ("torch", "auto", False, "torch"),
    ],
)
def test_engine_choice(
    monkeypatch: pytest.MonkeyPatch, engine: str, device: str, accelerator: bool, chosen: str
) -> None:
    monkeypatch.setattr(selection, "accelerator_present", lambda: accelerator)
    assert choose_engine(engine, device) == chosen


@pytest.mark.parametrize(
    ("engine", "device", "message"),
    [
        ("onnx", "cuda", "ENGINE=onnx runs on the CPU"),
        ("tensorrt", "cpu", "ENGINE='tensorrt'"),
        ("auto", "tpu", "DEVICE='tpu'"),
    ],
)
def test_bad_combinations_are_model_errors(engine: str, device: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        choose_engine(engine, device)


def test_this_cpu_only_machine_has_no_accelerator_and_torch_stays_unloaded() -> None:
    code = (
        "import sys\n"
        "from gigaam_api.engines.selection import choose_engine\n"
        "print(choose_engine('auto', 'auto'), 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["onnx", "False"]
