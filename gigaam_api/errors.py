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
├── UnavailableError            the server cannot take work now (retry_after_s says when)
│   ├── QueueFullError          MAX_QUEUE transcriptions are already queued or running
│   ├── ModelLoadingError       the model is still downloading or loading
│   ├── ModelLoadFailedError    the model failed to load; retrying will not help
│   ├── ShuttingDownError       the server is stopping; another replica or a restart will answer
│   └── InsufficientStorageError  too little free disk for the upload or its decoded audio
├── JobError                    a transcription job asked for by id
│   ├── JobNotFoundError        no job has that id (never existed, or expired)
│   └── JobNotDoneError         its result was asked for before it finished
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


class UnavailableError(GigaamError):
    """The server cannot take the work now; retry_after_s is when to try again (None: don't)."""

    def __init__(self, message: str, retry_after_s: int | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueFullError(UnavailableError):
    """MAX_QUEUE transcriptions are already queued, uploading or running."""


class ModelLoadingError(UnavailableError):
    """The model is still downloading or loading."""


class ModelLoadFailedError(UnavailableError):
    """The model failed to load; the server needs attention, not a retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after_s=None)


class ShuttingDownError(UnavailableError):
    """The server is stopping: it takes no new work, and stopped this job before it finished."""


class InsufficientStorageError(UnavailableError):
    """The temp directory has too little free space for an upload (or the audio decoded from it)."""


class JobError(GigaamError):
    """A transcription job asked for by its id."""


class JobNotFoundError(JobError):
    """No job has this id: it never existed, or it expired."""


class JobNotDoneError(JobError):
    """The job's result was asked for while it is still queued or running."""
