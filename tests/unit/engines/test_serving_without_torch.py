"""The serving process on the ONNX path: bootstrap → engine → VAD → a transcription, and torch
never imported (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SERVE_ONE_FILE = """
import json, sys, threading
from pathlib import Path
from gigaam_api.bootstrap import build_transcriber
from gigaam_api.settings import Settings
settings = Settings(
    _env_file=None, model=sys.argv[1], models_dir=sys.argv[2], engine="onnx", num_threads=1
)
transcriber = build_transcriber(settings)
run = transcriber.transcribe(Path(sys.argv[3]), settings.transcribe_options(), threading.Event())
segments = list(run)
print(json.dumps({
    "engine": [transcriber.engine, transcriber.precision],
    "segments": len(segments),
    "text": " ".join(segment.text for segment in segments),
    "torch": "torch" in sys.modules,
}))
"""


def test_serving_a_request_on_the_onnx_engine_never_imports_torch(
    tiny_v3_ctc_checkpoint: Path, speech_wav_short: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SERVE_ONE_FILE, str(tiny_v3_ctc_checkpoint), str(tmp_path),
         str(speech_wav_short)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["engine"] == ["onnx", "fp32"]
    assert report["segments"] >= 1 and report["text"]
    assert report["torch"] is False
