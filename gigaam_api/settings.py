"""The one place that reads the environment (and `.env`): every setting, its default and bounds.

Only the CLI, the server and bootstrap read Settings; everything else takes plain arguments.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gigaam_api.types import ChunkingOptions, TranscribeOptions, VadOptions
from gigaam_api.weights import OFFICIAL_WEIGHTS_URL

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
    models_dir: str = "/data/models"
    """Where downloaded weights are cached (a Docker volume; ./models for local runs)."""
    weights_url: str = OFFICIAL_WEIGHTS_URL
    """Base URL the weights are fetched from."""
    quantize_int8: bool = False
    """int8 weights (CPU): ONNX Runtime's s8 per-channel MatMul graph, or torch's dynamic
    quantization of the encoder's Linear layers."""
    batch_size: int = Field(default=4, ge=1, le=64)
    """VAD chunks per forward pass on long audio."""
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
    default_response_format: Literal["json", "text", "verbose_json", "srt", "vtt"] = "json"
    allowed_models: CsvList = Field(
        default_factory=lambda: ["v3_ctc", "v3_e2e_ctc", "v3_rnnt", "v3_e2e_rnnt"]
    )
    """Model names a request may ask for (comma-separated); the loaded model always runs."""
    cors_allow_origins: CsvList = Field(default_factory=list)
    """Origins allowed by CORS (comma-separated, e.g. app://obsidian.md); empty = CORS off."""
    model_aliases: CsvList = Field(
        default_factory=lambda: ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"]
    )
    """Names that mean 'the loaded model' (comma-separated), for clients that hard-code them."""

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

    @field_validator("allowed_models", "cors_allow_origins", "model_aliases", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
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
