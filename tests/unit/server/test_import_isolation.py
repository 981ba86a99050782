"""server/ must never import torch or numpy: checked in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_app_leaves_torch_and_numpy_out() -> None:
    code = (
        "import sys, gigaam_api.server.app, gigaam_api.bootstrap, gigaam_api.formats\n"
        "print(','.join(sorted(m for m in ('torch', 'numpy') if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


NO_HTTP_MODULES = (
    "gigaam_api.server.worker",
    "gigaam_api.server.jobs",
    "gigaam_api.server.registry",
    "gigaam_api.server.cache",
    "gigaam_api.server.runtime",
    "gigaam_api.remote",
    "gigaam_api.progress",
)


def test_the_worker_jobs_cache_and_runtime_know_no_http() -> None:
    """They raise domain errors; only server/errors.py maps them to statuses (issue 11)."""
    code = (
        "import sys\n"
        + "".join(f"import {module}\n" for module in NO_HTTP_MODULES)
        + "http = ('fastapi', 'starlette', 'uvicorn', 'gigaam_api.server.errors')\n"
        + "print(','.join(m for m in http if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
