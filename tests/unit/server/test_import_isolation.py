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
