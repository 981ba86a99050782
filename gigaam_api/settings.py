"""The one place that reads the environment (and `.env`): every setting, its default and bounds.

Settings are built by the CLI and the server's app factory (load_settings) and read by them and by
bootstrap.py; model/, engines/ and pipeline/ never import this module (tests/unit/test_layering.py)
and take plain arguments and *Options instead.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gigaam_api.formats import ResponseFormat
from gigaam_api.types import ChunkingOptions, TranscribeOptions, VadOptions
from gigaam_api.weights import OFFICIAL_MODELS, OFFICIAL_WEIGHTS_URL, model_id, official_name

CsvList = Annotated[list[str], NoDecode]


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the environment variable."""


class Settings(BaseSettings):
    """Server and CLI configuration, from environment variables or `.env` (names in UPPER case)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    model: str = "v3_ctc"
    """Official model name (downloaded into MODELS_DIR) or a path to a local .ckpt file."""
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """auto picks cuda, then mps, then cpu."""
    api_key: str = ""
    """Bearer key clients must send; empty turns authentication off."""
    models_dir: str = Field(default="~/.cache/gigaam-api", validate_default=True)
    """Where downloaded weights are cached; `~` is expanded. The Docker image sets /data/models."""
    weights_url: str = OFFICIAL_WEIGHTS_URL
    """Base URL the weights are fetched from."""
    quantize_int8: bool = False
    """int8 weights (CPU): ONNX Runtime's s8 per-channel MatMul graph, or torch's dynamic
    quantization of the encoder's Linear layers."""
    batch_size: int = Field(default=4, ge=1, le=64)
    """VAD chunks handed to the engine at once on long audio; a GPU runs them as one batch, a
    CPU engine one by one (faster there, D-051)."""
    num_threads: int | None = Field(default=None, ge=1, le=256)
    """Intra-op threads of the engine; unset (or empty) = the CPUs the process may use (the
    cgroup quota, e.g. a compose `cpus:` limit, else the affinity mask)."""
    max_upload_mb: int = Field(default=2048, ge=1)
    """Largest accepted upload, in MiB."""
    max_audio_seconds: float = Field(default=36000.0, ge=0)
    """Longest accepted audio; 0 means no limit."""
    max_queue: int = Field(default=8, ge=1)
    """Queued plus running transcription requests; one more gets 503."""
    vad_min_duration: float = Field(default=15.0, gt=0)
    vad_max_duration: float = Field(default=22.0, gt=0)
    vad_strict_limit: float = Field(default=30.0, gt=0)
    vad_new_chunk_threshold: float = Field(default=0.2, ge=0)
    vad_threshold: float = Field(default=0.5, gt=0, lt=1)
    """Silero speech probability threshold."""
    host: str = "0.0.0.0"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = False
    """One JSON object per log line instead of plain text."""
    default_response_format: ResponseFormat = "json"
    allowed_models: CsvList = Field(
        default_factory=lambda: ["v3_ctc", "v3_e2e_ctc", "v3_rnnt", "v3_e2e_rnnt"]
    )
    """Official models this server may be set to (MODEL) and that requests may name
    (comma-separated); listed by /v1/models. The loaded model always runs."""
    cors_allow_origins: CsvList = Field(default_factory=list)
    """Origins allowed by CORS (comma-separated, e.g. app://obsidian.md); empty = CORS off."""
    model_aliases: CsvList = Field(
        default_factory=lambda: ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"]
    )
    """Names that mean 'the loaded model' (comma-separated), for clients that hard-code them."""
    # Jobs: upload deadlines, shared jobs and their result cache, heartbeats (D-080..D-092)
    upload_idle_timeout_s: float = Field(default=30.0, ge=0)
    """An upload that sends no byte for this long is dropped with 408; 0 = no limit."""
    upload_min_rate_kib_s: float = Field(default=8.0, ge=0)
    """Lowest mean upload rate (KiB/s), checked from 10 s into an upload (408); 0 = no floor."""
    job_grace_s: float = Field(default=30.0, ge=0)
    """When the last client of a job disconnects, it keeps running this long for a retry to
    attach; then it is cancelled. 0 cancels at once. Jobs API submissions never expire so."""
    cache_dir: str = Field(default="~/.cache/gigaam-api/results", validate_default=True)
    """Finished transcripts, kept across restarts; `~` is expanded; empty = memory only. The
    Docker image sets /data/cache. A directory that cannot be created or written is reported in
    the log and /health, and the cache is off."""
    cache_ttl_hours: float = Field(default=168.0, gt=0)
    """A cached transcript older than this is deleted."""
    cache_max_mb: int = Field(default=512, ge=1)
    """Disk the cache may use (MiB); the oldest entries go first."""
    sync_heartbeat_s: float = Field(default=3.0, ge=0)
    """A json/verbose_json answer still computing after this long starts as 200 and sends a
    space (valid JSON whitespace) at this interval, so client read timeouts never fire; 0 = off."""
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    """Longest silence on an SSE stream: a queue, progress or keep-alive comment is sent then."""
    # Web page (issue 13)
    ui_enabled: bool = True
    """Serve the web page at / (drop a file, watch the transcript, download subtitles)."""

    # Operations: graceful shutdown, disk space (D-160..)
    shutdown_grace_s: float = Field(default=5.0, ge=0)
    """On SIGTERM the server refuses new work (503), cancels queued jobs and gives the running
    one this long to finish before cancelling it; keep it under the stop timeout (Docker: 10 s)."""
    temp_dir: str = ""
    """Where uploads and decoded audio wait while they are transcribed (a private directory is
    made inside, removed at exit); empty = the system's temp dir (TMPDIR)."""
    min_free_disk_mb: int = Field(default=256, ge=0)
    """Free space (MiB) that uploads must leave in TEMP_DIR; one that would leave less is refused
    with 503 insufficient_storage, before its body is read when it declares its length."""

    # ONNX Runtime engine (issue 8)
    engine: Literal["auto", "onnx", "torch"] = "auto"
    """auto: ONNX Runtime on the CPU, torch on a GPU; onnx or torch force one."""

    @field_validator("num_threads", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("models_dir", "cache_dir")
    @classmethod
    def _expand_home(cls, value: str) -> str:
        return os.path.expanduser(value)

    @field_validator("allowed_models", "cors_allow_origins", "model_aliases", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_models")
    @classmethod
    def _official_names(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in OFFICIAL_MODELS]
        if unknown:
            raise ValueError(
                f"{', '.join(unknown)} not official model names ({', '.join(OFFICIAL_MODELS)})"
            )
        return value

    @field_validator("vad_max_duration")
    @classmethod
    def _max_not_below_min(cls, value: float, info: ValidationInfo) -> float:
        minimum = info.data.get("vad_min_duration")
        if minimum is not None and value < minimum:
            raise ValueError("must be >= VAD_MIN_DURATION")
        return value

    @field_validator("vad_strict_limit")
    @classmethod
    def _strict_not_below_max(cls, value: float, info: ValidationInfo) -> float:
        maximum = info.data.get("vad_max_duration")
        if maximum is not None and value < maximum:
            raise ValueError("must be >= VAD_MAX_DURATION")
        return value

    @property
    def served_model(self) -> str:
        """The id MODEL is served under: its official name, or a local checkpoint's file stem."""
        return model_id(self.model)

    def check_served_model(self) -> None:
        """Refuse to serve an official MODEL that ALLOWED_MODELS leaves out.

        A path to a local checkpoint is always allowed: it is the operator's own file, served
        under its file stem, which no list could name in advance (see D-101).

        Raises:
            SettingsError: naming both settings and how to fix them.
        """
        name = official_name(self.model)
        if name is not None and name not in self.allowed_models:
            listed = ", ".join(self.allowed_models) or "empty"
            raise SettingsError(
                f"MODEL={self.model} is not in ALLOWED_MODELS ({listed}); add {name} to "
                "ALLOWED_MODELS or set MODEL to one of them."
            )

    def transcribe_options(self) -> TranscribeOptions:
        """The per-call defaults these settings describe."""
        return TranscribeOptions(
            vad=VadOptions(threshold=self.vad_threshold),
            chunking=ChunkingOptions(
                min_duration_s=self.vad_min_duration,
                max_duration_s=self.vad_max_duration,
                strict_limit_s=self.vad_strict_limit,
                new_chunk_threshold_s=self.vad_new_chunk_threshold,
            ),
            batch_size=self.batch_size,
            max_audio_s=self.max_audio_seconds,
        )


def load_settings(**overrides: object) -> Settings:
    """Read Settings, turning a validation failure into one message naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"Invalid settings: {problems}") from exc
