"""Exports of the small official-format checkpoints, made once per session.

In-process (export_model) for speed; the child-process path engines/onnx_cache.py takes is tested
in test_onnx_cache.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gigaam_api.engines.onnx_cache import Precision
from gigaam_api.engines.onnx_export import export_model
from testkit.checkpoints import tokenizer_path_for

INT8_FAMILIES = ("v1_ctc", "v3_rnnt", "v3_e2e_ctc")
"""conv2d + rel_pos + BatchNorm, conv1d + rotary + RNN-T, SentencePiece CTC."""


def tokenizer_of(checkpoint: Path) -> Path | None:
    path = tokenizer_path_for(checkpoint)
    return path if path.exists() else None


def _export_all(
    checkpoints: dict[str, Path], root: Path, families: tuple[str, ...], precision: Precision
) -> dict[str, Path]:
    directories = {}
    for family in families:
        directory = root / f"{family}-{precision}"
        directory.mkdir()
        checkpoint = checkpoints[family]
        export_model(
            checkpoint, tokenizer_of(checkpoint), directory, precision=precision, model_id=family
        )
        directories[family] = directory
    return directories


@pytest.fixture(scope="session")
def fp32_exports(
    tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """family → export directory of its fp32 graph."""
    root = tmp_path_factory.mktemp("onnx-fp32")
    return _export_all(tiny_checkpoints, root, tuple(tiny_checkpoints), "fp32")


@pytest.fixture(scope="session")
def int8_exports(
    tiny_checkpoints: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """family → export directory of its int8 graph, for INT8_FAMILIES."""
    root = tmp_path_factory.mktemp("onnx-int8")
    return _export_all(tiny_checkpoints, root, INT8_FAMILIES, "int8")
