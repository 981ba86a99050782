"""The domain exceptions, one tree; no HTTP here (server/errors.py maps them to statuses).

GigaamError
├── AudioError                  the input audio cannot be used
│   ├── AudioDecodeError        corrupt, empty, not audio, video without an audio track
│   ├── AudioTooLongError       longer than the configured limit
│   └── AudioToolMissingError   ffmpeg or ffprobe is not on PATH
├── ModelError                  the model cannot be loaded
│   ├── UnknownModelError       a name that is neither a known model nor an existing file
│   ├── CheckpointError         unreadable, unexpected layout or shapes
│   │   └── UnsafeCheckpointError   the pickle asks for something outside the allowlist
│   ├── TokenizerError          the SentencePiece file is missing or unreadable
│   └── ExportError             exporting the network to ONNX failed, or no place to cache it
├── WeightsError                fetching weights failed
│   ├── WeightsDownloadError    network/HTTP failure after the retries
│   ├── WeightsChecksumError    the file's MD5 is not the official one (file removed)
│   └── ModelsDirError          MODELS_DIR is not writable or is full
└── TranscriptionCancelledError the caller cancelled the run
"""

from __future__ import annotations


class GigaamError(Exception):
    """Root of every error this project raises on purpose."""


class AudioError(GigaamError):
    """The input audio cannot be used; the message is one line a user can act on."""


class AudioDecodeError(AudioError):
    """ffmpeg could not decode the input (corrupt, empty, not audio, no audio stream)."""


class AudioTooLongError(AudioError):
    """The audio is longer than the configured maximum."""

    def __init__(self, duration_s: float, limit_s: float) -> None:
        super().__init__(
            f"Audio is too long: {duration_s:.1f} s exceeds the limit of {limit_s:g} s."
        )
        self.duration_s = duration_s
        self.limit_s = limit_s


class AudioToolMissingError(AudioError):
    """ffmpeg or ffprobe is not installed; a server problem, not the client's."""


class ModelError(GigaamError):
    """The model cannot be loaded."""


class UnknownModelError(ModelError):
    """A model name that is neither in the official table nor a path to a checkpoint."""


class CheckpointError(ModelError):
    """The checkpoint file is unreadable or its layout/shapes are not a GigaAM model's."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle references a global outside the allowlist; nothing was run."""


class TokenizerError(ModelError):
    """The SentencePiece tokenizer file is missing or unreadable."""


class ExportError(ModelError):
    """Exporting the network to ONNX failed, or there is no writable place to cache the graph."""


class WeightsError(GigaamError):
    """Fetching model weights failed."""


class WeightsDownloadError(WeightsError):
    """The download failed after every retry (network error or HTTP status)."""


class WeightsChecksumError(WeightsError):
    """The downloaded file's MD5 is not the official one; the file has been removed."""


class ModelsDirError(WeightsError):
    """MODELS_DIR cannot be created or written (read-only, full, or a file)."""


class TranscriptionCancelledError(GigaamError):
    """The run was cancelled by its caller (for example, the HTTP client disconnected)."""
