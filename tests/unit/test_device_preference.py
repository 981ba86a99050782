"""DEVICE=auto prefers cuda, then mps, then cpu, whatever this machine has (availability is
patched, so the order is tested on a machine without a GPU too)."""

from __future__ import annotations

import pytest
import torch

from gigaam_api.engines.pytorch import resolve_device
from gigaam_api.errors import ModelError


def make_available(monkeypatch: pytest.MonkeyPatch, *, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "chosen"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, chosen: str
) -> None:
    make_available(monkeypatch, cuda=cuda, mps=mps)
    assert resolve_device("auto") == chosen


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_an_explicit_device_is_used_when_present_and_refused_when_absent(
    monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    make_available(monkeypatch, cuda=True, mps=True)
    assert resolve_device(device) == device
    assert resolve_device("cpu") == "cpu"
    make_available(monkeypatch, cuda=False, mps=False)
    with pytest.raises(ModelError, match="not available"):
        resolve_device(device)
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ModelError, match="not one of"):
        resolve_device("tpu")
