"""The Python API: load a GigaAM model by name or path and transcribe 16 kHz float32 waveforms.

Example (official weights are fetched into ~/.cache/gigaam-api on first use)::

    import numpy as np
    from gigaam_api.asr import load_model

    model = load_model("v3_ctc", num_threads=4)        # or "v3_e2e_rnnt", or "/path/to/my.ckpt"
    audio = np.zeros(16_000 * 3, dtype=np.float32)    # mono samples at 16 kHz in [-1, 1)
    [result] = model.transcribe_batch([audio])         # one ChunkResult per waveform (≤ ~25 s each)
    print(result.text, [(w.text, w.start, w.end) for w in result.words])
    outputs, frames = model.frame_outputs([audio])     # CTC: [B, T', C] log-probs, blank = C − 1

Long recordings go through the pipeline (VAD + chunking), not straight into transcribe_batch.
On a CPU the model runs on ONNX Runtime (exported from the checkpoint once, in a child process,
and cached beside it); on a GPU it runs on torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gigaam_api.engines.cpus import available_cpus
from gigaam_api.engines.network import NetworkEngine
from gigaam_api.engines.selection import choose_engine
from gigaam_api.types import ChunkResult, DownloadProgress, Word
from gigaam_api.weights import OFFICIAL_WEIGHTS_URL, resolve_weights

__all__ = ["OFFICIAL_WEIGHTS_URL", "ChunkResult", "NetworkEngine", "Word", "load_model"]

DEFAULT_MODELS_DIR = Path("~/.cache/gigaam-api")


def load_model(
    name_or_path: str,
    *,
    engine: str = "auto",
    device: str = "auto",
    models_dir: Path | str | None = None,
    weights_url: str = OFFICIAL_WEIGHTS_URL,
    num_threads: int | None = None,
    quantize_int8: bool = False,
    on_progress: Callable[[DownloadProgress], None] | None = None,
) -> NetworkEngine:
    """Load a GigaAM ASR model ready to transcribe.

    Args:
        name_or_path: an official name (v3_ctc, v3_rnnt, v3_e2e_ctc, v3_e2e_rnnt, v2_*, v1_*,
            multilingual_ctc, or the aliases ctc/rnnt/e2e_ctc/e2e_rnnt) or a path to a local
            `.ckpt` in the official format (its tokenizer read from `<stem>_tokenizer.model`).
        engine: 'auto' (ONNX Runtime on the CPU, torch on a GPU), 'onnx' or 'torch'.
        device: 'auto' (cuda → mps → cpu), 'cpu', 'cuda' or 'mps'.
        models_dir: where official weights are cached (default ~/.cache/gigaam-api).
        weights_url: base URL official weights are downloaded from.
        num_threads: intra-op threads (None: the CPUs this process may use, cgroup quota
            included).
        quantize_int8: int8 weights: the s8 per-channel MatMul graph on ONNX Runtime, dynamic
            quantization of the encoder's Linear layers on torch (CPU only).
        on_progress: called with DownloadProgress while weights download.

    Returns:
        The engine (OnnxEngine or TorchEngine): transcribe_batch(), frame_outputs(), model_id,
        device, tokenizer.

    Raises:
        UnknownModelError, WeightsError, CheckpointError, TokenizerError, ExportError,
        ModelError.
    """
    chosen = choose_engine(engine, device)
    directory = Path(models_dir) if models_dir is not None else DEFAULT_MODELS_DIR
    resolved = resolve_weights(name_or_path, directory.expanduser(), weights_url, on_progress)
    threads = num_threads if num_threads is not None else available_cpus()
    if chosen == "onnx":
        from gigaam_api.engines.onnx import OnnxEngine

        return OnnxEngine.from_files(
            resolved.checkpoint_path,
            resolved.tokenizer_path,
            model_id=resolved.model_id,
            num_threads=threads,
            quantize_int8=quantize_int8,
        )
    from gigaam_api.engines.pytorch import TorchEngine

    return TorchEngine.from_files(
        resolved.checkpoint_path,
        resolved.tokenizer_path,
        model_id=resolved.model_id,
        device=device,
        num_threads=threads,
        quantize_int8=quantize_int8,
    )
