"""The package's metadata: one version string, read by the installed distribution and the app."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import gigaam_api
from gigaam_api.server.app import create_app
from tests.fixtures.settings import isolated_settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_written_once_in_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("gigaam-api") == gigaam_api.__version__
    assert create_app(isolated_settings()).version == gigaam_api.__version__
