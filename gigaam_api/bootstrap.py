"""Settings in, a ready Transcriber out: asr.load_model (weights → engine) → Silero VAD → pipeline.

The one place that wires the concrete parts together; the server's lifespan and the CLI import
it lazily, so importing the server never imports an engine.
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
    """Load the model as settings say (downloading and exporting if needed), VAD, the pipeline.

    Args:
        settings: MODEL, MODELS_DIR, WEIGHTS_URL, ENGINE, DEVICE, NUM_THREADS and QUANTIZE_INT8
            are used; TEMP_DIR is where runs spool decoded audio (empty: the system temp dir).
        on_progress: called during weight downloads.

    Raises:
        WeightsError: the weights could not be fetched or verified.
        ModelError: the checkpoint, tokenizer, export or device is unusable.
    """
    from gigaam_api.asr import load_model
    from gigaam_api.pipeline.transcribe import Pipeline
    from gigaam_api.pipeline.vad import SileroVad

    engine = load_model(
        settings.model,
        engine=settings.engine,
        device=settings.device,
        models_dir=settings.models_dir,
        weights_url=settings.weights_url,
        num_threads=settings.num_threads,
        quantize_int8=settings.quantize_int8,
        on_progress=on_progress,
    )
    vad = SileroVad.load()
    logger.info(
        "Transcriber ready: %s, %s %s on %s",
        engine.model_id,
        engine.engine,
        engine.precision,
        engine.device,
    )
    return Pipeline(engine, vad, temp_dir=Path(settings.temp_dir) if settings.temp_dir else None)
