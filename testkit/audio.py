"""Russian speech from espeak-ng, resampled by ffmpeg to the 16 kHz mono wav the server decodes."""

from __future__ import annotations

import subprocess
from pathlib import Path

SAMPLE_RATE = 16_000
WAV_16K_MONO = ("-ar", str(SAMPLE_RATE), "-ac", "1", "-c:a", "pcm_s16le")
"""ffmpeg output arguments for a 16 kHz mono 16-bit wav."""


def run_ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; a failure raises CalledProcessError carrying ffmpeg's message."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


def synthesize_ru(text: str, path: Path) -> Path:
    """Speak `text` with espeak-ng's Russian voice into a 16 kHz mono wav at `path`."""
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "ru", "-w", str(raw), text], check=True, capture_output=True)
    run_ffmpeg("-i", str(raw), *WAV_16K_MONO, str(path))
    raw.unlink()
    return path
