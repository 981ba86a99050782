"""Settings in, a ready Transcriber out: weights -> torch engine -> Silero VAD -> pipeline.

The one place that wires the concrete parts together; the server's lifespan and the CLI import
it lazily, so importing the server never imports torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from gigaam_api.settings import Settings
from gigaam_api.types import DownloadProgress, Transcriber

logger = logging.getLogger(__name__)


def build_transcriber(
    settings: Settings, on_progress: Callable[[DownloadProgress], None] | None = None
) -> Transcriber:
    """Resolve (downloading if needed) the weights, load engine and VAD, build the pipeline.

    Args:
        settings: MODEL, MODELS_DIR, WEIGHTS_URL, DEVICE, NUM_THREADS and QUANTIZE_INT8 are used;
            TEMP_DIR is where runs spool decoded audio (empty: the system temp dir).
        on_progress: called during weight downloads.

    Raises:
        WeightsError: the weights could not be fetched or verified.
        ModelError: the checkpoint, tokenizer or device is unusable.
    """
    from gigaam_api.engines.pytorch import TorchEngine
    from gigaam_api.pipeline.transcribe import Pipeline
    from gigaam_api.pipeline.vad import SileroVad
    from gigaam_api.weights import resolve_weights

    weights = resolve_weights(
        settings.model, Path(settings.models_dir), settings.weights_url, on_progress
    )
    engine = TorchEngine.from_files(
        weights.checkpoint_path,
        weights.tokenizer_path,
        model_id=weights.model_id,
        device=settings.device,
        num_threads=settings.num_threads,
        quantize_int8=settings.quantize_int8,
    )
    vad = SileroVad.load()
    logger.info("Transcriber ready: %s on %s", engine.model_id, engine.device)
    return Pipeline(engine, vad, temp_dir=Path(settings.temp_dir) if settings.temp_dir else None)
