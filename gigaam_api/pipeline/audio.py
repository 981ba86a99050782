"""Audio in: ffprobe for the duration, then ffmpeg for a 16 kHz mono int16 stream from a pipe.

Every failure becomes a typed AudioError carrying ffmpeg's own one-line reason; the decoder
process is killed and reaped on every exit path. No torch here, and nothing of VAD or the model.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np
import numpy.typing as npt

from gigaam_api.errors import AudioDecodeError, AudioToolMissingError, AudioTooLongError
from gigaam_api.types import SAMPLE_RATE

logger = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]
"""Mono int16 samples at SAMPLE_RATE, as ffmpeg writes them."""

BYTES_PER_SAMPLE = 2
DEFAULT_BLOCK_SAMPLES = SAMPLE_RATE  # one second per pipe read: small enough to react to cancel
_PROBE_TIMEOUT_S = 60.0
# ffmpeg scores a format guess 0-100; below "extension + 1 frame" (50) the guess rests on a weak
# content match (a text file passes as raw AMR with 26), so such files must also decode cleanly.
_CONFIDENT_PROBE_SCORE = 50
_VERIFY_DECODE_S = 10
_STDERR_TAIL_LINES = 20


@dataclass(frozen=True)
class AudioProbe:
    """What ffprobe says about a file before decoding it."""

    duration_s: float | None
    """None when the container does not record a duration (streams written to a pipe)."""
    audio_streams: int
    video_streams: int


def _reason(stderr: str, path: Path) -> str:
    """ffmpeg's last meaningful line, without the (temporary, meaningless) input path."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    line = lines[-1].replace(f"{path}: ", "").replace(str(path), path.name)
    return line.rstrip(".")


def _run_ffprobe(arguments: list[str], path: Path) -> tuple[bytes, str]:
    """Run ffprobe on `path` quietly; (stdout, stderr) or a typed error if it fails."""
    command = ["ffprobe", "-v", "error", *arguments, str(path)]
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise AudioToolMissingError("ffprobe is not installed or not on PATH.") from exc
    except subprocess.TimeoutExpired as exc:
        raise AudioDecodeError("Cannot read the audio: ffprobe timed out.") from exc
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        raise AudioDecodeError(f"Cannot read the audio: {_reason(stderr, path)}.")
    return done.stdout, stderr


def _check_decodes_cleanly(path: Path) -> None:
    """Decode the first seconds of a weakly identified file; any decoder error rejects it."""
    _, stderr = _run_ffprobe(
        ["-count_frames", "-read_intervals", f"%+{_VERIFY_DECODE_S}", "-select_streams", "a:0"],
        path,
    )
    if stderr.strip():
        raise AudioDecodeError(
            f"Cannot read the audio: not a recognisable audio file ({_reason(stderr, path)})."
        )


def probe_audio(path: Path) -> AudioProbe:
    """Ask ffprobe for the streams and the duration of `path`.

    Raises:
        AudioDecodeError: ffprobe cannot read the file (corrupt, empty, not media, or only
            weakly recognised and not decodable).
        AudioToolMissingError: ffprobe is not on PATH.
    """
    stdout, _ = _run_ffprobe(
        ["-show_entries", "format=duration,probe_score:stream=codec_type", "-of", "json"], path
    )
    try:
        report = json.loads(stdout or b"{}")
    except json.JSONDecodeError as exc:
        raise AudioDecodeError("Cannot read the audio: ffprobe gave no report.") from exc
    kinds = [stream.get("codec_type") for stream in report.get("streams", [])]
    container = report.get("format", {})
    if int(container.get("probe_score", 100)) < _CONFIDENT_PROBE_SCORE:
        _check_decodes_cleanly(path)
    raw_duration = container.get("duration")
    try:
        duration_s: float | None = float(raw_duration) if raw_duration is not None else None
    except ValueError:  # "N/A"
        duration_s = None
    return AudioProbe(
        duration_s=duration_s,
        audio_streams=kinds.count("audio"),
        video_streams=kinds.count("video"),
    )


def check_probe(probe: AudioProbe, max_audio_s: float) -> None:
    """Reject what the probe already shows to be unusable: no audio track, or too long.

    Raises:
        AudioDecodeError: no audio stream (e.g. a video without sound).
        AudioTooLongError: the known duration exceeds max_audio_s (0 = no limit).
    """
    if probe.audio_streams == 0:
        raise AudioDecodeError("Cannot read the audio: the file has no audio track.")
    if max_audio_s > 0 and probe.duration_s is not None and probe.duration_s > max_audio_s:
        raise AudioTooLongError(probe.duration_s, max_audio_s)


class _StderrTail:
    """Drains a pipe in a thread, keeping only the last lines (no deadlock, bounded memory)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                self._lines.append(raw.decode("utf-8", "replace"))

    def text(self) -> str:
        self._thread.join(timeout=5.0)
        return "".join(self._lines)


class AudioDecoder:
    """A running `ffmpeg` that turns a file into int16 blocks; use as a context manager.

    Args:
        path: any file ffmpeg can read.
        max_audio_s: stop with AudioTooLongError as soon as more audio than this has been
            decoded (0 = no limit); guards streams whose container does not state a duration.
        block_samples: samples per block handed out (the last block may be shorter).
    """

    def __init__(
        self, path: Path, *, max_audio_s: float = 0.0, block_samples: int = DEFAULT_BLOCK_SAMPLES
    ) -> None:
        self.path = path
        self.max_audio_s = max_audio_s
        self.block_samples = block_samples
        self.samples_decoded = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: _StderrTail | None = None

    @property
    def pid(self) -> int | None:
        """The ffmpeg process id while it runs (None before start and after close)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Spawn ffmpeg.

        Raises:
            AudioToolMissingError: ffmpeg is not on PATH.
        """
        command = [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-nostats",
            "-loglevel",
            "error",
            "-i",
            str(self.path),
            "-vn",
            "-sn",
            "-dn",
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "-f",
            "s16le",
            "-",
        ]
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except FileNotFoundError as exc:
            raise AudioToolMissingError("ffmpeg is not installed or not on PATH.") from exc
        assert self._process.stderr is not None
        self._stderr = _StderrTail(self._process.stderr)

    def blocks(self) -> Generator[Samples, None, None]:
        """Yield int16 blocks until the end of the audio.

        Raises:
            AudioDecodeError: ffmpeg failed (its reason in the message) or produced no samples.
            AudioTooLongError: more than max_audio_s has been decoded.
        """
        process = self._process
        if process is None or process.stdout is None:
            raise RuntimeError("AudioDecoder.blocks() before start()")
        limit_samples = int(self.max_audio_s * SAMPLE_RATE) if self.max_audio_s > 0 else 0
        block_bytes = self.block_samples * BYTES_PER_SAMPLE
        carry = b""
        while True:
            data = process.stdout.read(block_bytes)
            if not data:
                break
            data = carry + data
            usable = len(data) - len(data) % BYTES_PER_SAMPLE
            carry = data[usable:]
            block = np.frombuffer(data[:usable], dtype=np.int16)
            self.samples_decoded += len(block)
            if limit_samples and self.samples_decoded > limit_samples:
                self.close()
                raise AudioTooLongError(self.samples_decoded / SAMPLE_RATE, self.max_audio_s)
            yield block
        returncode = process.wait()
        if returncode != 0:
            reason = _reason(self._stderr.text() if self._stderr else "", self.path)
            raise AudioDecodeError(f"Cannot decode the audio: {reason}.")
        if self.samples_decoded == 0:
            raise AudioDecodeError("Cannot decode the audio: it contains no samples.")

    def kill(self) -> None:
        """Kill ffmpeg and reap it, from any thread (a cancel): the reading thread then meets
        the end of the stream, and its close() frees the pipes."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Kill ffmpeg if it still runs and reap it; safe to call any number of times."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.text()  # joins the drain thread, which ends at the pipe's EOF

    def __enter__(self) -> AudioDecoder:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
