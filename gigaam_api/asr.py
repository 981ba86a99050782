"""The Python API: load a GigaAM model by name or path and transcribe 16 kHz float32 waveforms.

Example (official weights are fetched into ~/.cache/gigaam-api on first use)::

    import numpy as np
    from gigaam_api.asr import load_model

    model = load_model("v3_ctc", num_threads=4)        # or "v3_e2e_rnnt", or "/path/to/my.ckpt"
    audio = np.zeros(16_000 * 3, dtype=np.float32)    # mono samples at 16 kHz in [-1, 1)
    [result] = model.transcribe_batch([audio])         # one ChunkResult per waveform (≤ ~25 s each)
    print(result.text, [(w.text, w.start, w.end) for w in result.words])
    encoded, frames = model.encode([audio])            # [B, d, T'] encoder output, [B] frames
    log_probs, frames = model.ctc_log_probs([audio])   # CTC models: [B, T', C], blank = C − 1

Long recordings go through the pipeline (VAD + chunking), not straight into transcribe_batch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gigaam_api.engines.pytorch import TorchEngine
from gigaam_api.settings import OFFICIAL_WEIGHTS_URL
from gigaam_api.types import ChunkResult, DownloadProgress, Word
from gigaam_api.weights import resolve_weights

__all__ = ["OFFICIAL_WEIGHTS_URL", "ChunkResult", "TorchEngine", "Word", "load_model"]

DEFAULT_MODELS_DIR = Path("~/.cache/gigaam-api")


def load_model(
    name_or_path: str,
    *,
    device: str = "auto",
    models_dir: Path | str | None = None,
    weights_url: str = OFFICIAL_WEIGHTS_URL,
    num_threads: int | None = None,
    quantize_int8: bool = False,
    on_progress: Callable[[DownloadProgress], None] | None = None,
) -> TorchEngine:
    """Load a GigaAM ASR model ready to transcribe.

    Args:
        name_or_path: an official name (v3_ctc, v3_rnnt, v3_e2e_ctc, v3_e2e_rnnt, v2_*, v1_*,
            multilingual_ctc, or the aliases ctc/rnnt/e2e_ctc/e2e_rnnt) or a path to a local
            `.ckpt` in the official format (its tokenizer read from `<stem>_tokenizer.model`).
        device: 'auto' (cuda → mps → cpu), 'cpu', 'cuda' or 'mps'.
        models_dir: where official weights are cached (default ~/.cache/gigaam-api).
        weights_url: base URL official weights are downloaded from.
        num_threads: torch intra-op threads (None keeps torch's default).
        quantize_int8: dynamic int8 quantization of the encoder's Linear layers (CPU only).
        on_progress: called with DownloadProgress while weights download.

    Returns:
        A TorchEngine: transcribe_batch(), encode(), ctc_log_probs(), model_id, device.

    Raises:
        UnknownModelError, WeightsError, CheckpointError, TokenizerError, ModelError.
    """
    directory = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
    resolved = resolve_weights(name_or_path, directory.expanduser(), weights_url, on_progress)
    return TorchEngine.from_files(
        resolved.checkpoint_path,
        resolved.tokenizer_path,
        model_id=resolved.model_id,
        device=device,
        num_threads=num_threads,
        quantize_int8=quantize_int8,
    )
