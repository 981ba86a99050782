"""scripts/install as a normal user: it names the missing Debian packages in one apt-get line.

The script runs for real under bash with a PATH holding only what it needs, so ffmpeg and
espeak-ng can be absent; a stand-in `id` makes it a normal user (the tests run as root), and a
module shadowing `ensurepip` plays Debian's Python without python3-venv. It stops before pip runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON_VENV_PACKAGE = f"python{sys.version_info.major}.{sys.version_info.minor}-venv"


def _stub(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bare_path(tmp_path: Path) -> Path:
    """A PATH folder with dirname and an `id` that reports UID 1000: no ffmpeg, no espeak-ng."""
    folder = tmp_path / "bin"
    folder.mkdir()
    dirname = shutil.which("dirname")
    assert dirname
    (folder / "dirname").symlink_to(dirname)
    _stub(folder, "id", "echo 1000")
    return folder


def _install(bare_path: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash
    environment = {
        "PATH": str(bare_path),
        "HOME": str(tmp_path),
        "PYTHON": sys.executable,
        "VENV": str(tmp_path / "venv"),
        **env,
    }
    return subprocess.run(
        [bash, str(ROOT / "scripts" / "install")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_normal_user_gets_the_exact_apt_line_and_nothing_is_installed(
    bare_path: Path, tmp_path: Path
) -> None:
    no_ensurepip = tmp_path / "no-ensurepip"
    no_ensurepip.mkdir()
    (no_ensurepip / "ensurepip.py").write_text("raise ImportError('not on Debian without venv')\n")

    result = _install(bare_path, tmp_path, PYTHONPATH=str(no_ensurepip))

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Missing system packages. Install them, then run this again:",
        f"  sudo apt-get install -y ffmpeg {PYTHON_VENV_PACKAGE}",
    ]
    assert not (tmp_path / "venv").exists()


def test_test_tools_are_asked_for_only_with_test_tools(bare_path: Path, tmp_path: Path) -> None:
    assert (
        _install(bare_path, tmp_path).stderr.splitlines()[-1] == "  sudo apt-get install -y ffmpeg"
    )
    with_tests = _install(bare_path, tmp_path, WITH_TEST_TOOLS="1")
    assert with_tests.stderr.splitlines()[-1] == "  sudo apt-get install -y ffmpeg espeak-ng"


def test_a_python_older_than_3_11_is_refused_before_anything_else(
    bare_path: Path, tmp_path: Path
) -> None:
    old_python = _stub(bare_path, "python3.10", "exit 1")  # fails the version check

    result = _install(bare_path, tmp_path, PYTHON=str(old_python))

    assert result.returncode == 1
    assert "gigaam-api needs Python >= 3.11" in result.stderr
    assert "apt-get" not in result.stderr


def test_a_missing_interpreter_is_named(bare_path: Path, tmp_path: Path) -> None:
    result = _install(bare_path, tmp_path, PYTHON="python3.99")
    assert result.returncode == 1
    assert result.stderr.startswith("No python3.99 found.")
    assert os.listdir(tmp_path) == ["bin"]
