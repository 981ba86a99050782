"""Which engine runs the model: ENGINE=auto|onnx|torch against DEVICE, decided without torch.

auto picks ONNX Runtime on the CPU and torch on a GPU (CUDA or Apple's MPS). Whether a GPU is
there is judged from the platform and the installed torch build's version string, so choosing
the ONNX engine never imports torch (D-040).
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Literal

from gigaam_api.errors import ModelError

EngineName = Literal["onnx", "torch"]
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def choose_engine(engine: str, device: str) -> EngineName:
    """The engine for ENGINE and DEVICE.

    Raises:
        ModelError: an unknown value, or ENGINE=onnx with a GPU device (ONNX runs on the CPU).
    """
    if device not in ("auto", "cpu", "cuda", "mps"):
        raise ModelError(f"DEVICE={device!r} is not one of auto, cpu, cuda, mps")
    if engine == "torch":
        return "torch"
    if engine == "onnx":
        if device in ("cuda", "mps"):
            raise ModelError(
                f"ENGINE=onnx runs on the CPU; DEVICE={device} needs ENGINE=torch (or auto)"
            )
        return "onnx"
    if engine != "auto":
        raise ModelError(f"ENGINE={engine!r} is not one of auto, onnx, torch")
    if device == "cpu":
        return "onnx"
    if device in ("cuda", "mps"):
        return "torch"
    return "torch" if accelerator_present() else "onnx"


def accelerator_present() -> bool:
    """A GPU torch could use: Apple silicon (MPS), or an NVIDIA driver plus a CUDA torch build."""
    if sys.platform == "darwin" and platform.machine() == "arm64":
        return True
    if not NVIDIA_DRIVER.exists():
        return False
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False
    return "+cpu" not in version
