"""The layers' import rules, checked in fresh interpreters (see docs/architecture.md)."""

import subprocess
import sys

import pytest


def _modules_loaded_after(import_line: str, candidates: tuple[str, ...]) -> set[str]:
    code = (
        "import sys\n"
        f"{import_line}\n"
        f"print(','.join(m for m in {candidates!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.strip()
    return set(filter(None, out.split(",")))


@pytest.mark.parametrize(
    "module",
    [
        "gigaam_api.model.gigaam",
        "gigaam_api.engines.pytorch",
        "gigaam_api.engines.onnx",
        "gigaam_api.pipeline.transcribe",
    ],
)
def test_model_engine_and_pipeline_know_nothing_of_http(module: str) -> None:
    http = ("fastapi", "starlette", "uvicorn", "python_multipart", "gigaam_api.server")
    assert _modules_loaded_after(f"import {module}", http) == set()


@pytest.mark.parametrize(
    "module",
    ["gigaam_api.model.gigaam", "gigaam_api.engines.pytorch", "gigaam_api.pipeline.transcribe"],
)
def test_model_engine_and_pipeline_never_read_settings(module: str) -> None:
    settings = ("gigaam_api.settings", "pydantic_settings")
    assert _modules_loaded_after(f"import {module}", settings) == set()


def test_pipeline_does_not_pull_in_a_concrete_engine() -> None:
    loaded = _modules_loaded_after(
        "import gigaam_api.pipeline.transcribe",
        ("gigaam_api.engines.pytorch", "gigaam_api.engines.onnx"),
    )
    assert loaded == set()


def test_the_onnx_engine_and_the_python_api_do_not_import_torch() -> None:
    loaded = _modules_loaded_after(
        "import gigaam_api.engines.onnx, gigaam_api.asr",
        ("torch", "onnx", "gigaam_api.model.gigaam"),
    )
    assert loaded == set()
