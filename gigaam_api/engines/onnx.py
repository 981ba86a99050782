"""The ONNX Runtime engine (CPU): the exported network in one session, decoding in numpy.

Needs only onnxruntime, numpy, sentencepiece and an export directory (engines/onnx_cache.py):
torch is never imported, so the serving process stays small. The graph, the RNN-T head weights
and the tokenizer come from that directory, described by its manifest; decoding, text and word
timestamps are the torch engine's own (engines/network.py), so both give the same results for
the same frame outputs. Knows nothing of VAD, chunking or HTTP.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from pathlib import Path

import numpy as np
import onnxruntime

from gigaam_api.engines.cpus import available_cpus
from gigaam_api.engines.network import NetworkEngine
from gigaam_api.engines.onnx_cache import (
    GRAPH_FILE,
    INPUT_NAMES,
    OUTPUT_NAMES,
    RNNT_WEIGHTS_FILE,
    TOKENIZER_FILE,
    ManifestError,
    Precision,
    load_manifest,
    prepare_export,
)
from gigaam_api.errors import ModelError
from gigaam_api.model.config import DecodingConfig
from gigaam_api.model.decoding import greedy_decoder
from gigaam_api.model.tokenizer import load_tokenizer
from gigaam_api.model.transducer import FloatArray, IntArray

logger = logging.getLogger(__name__)

ALLOW_SPINNING = False
"""ORT's pool threads busy-wait after each operator for more work; between batches and requests
that kept a core busy for nothing (see D-047), so they sleep instead."""


def release_freed_heap() -> None:
    """Hand the heap freed after loading back to the OS (glibc's malloc_trim; elsewhere a no-op).

    Parsing a graph leaves hundreds of MB freed but still mapped (about 500 MB for a v3 fp32
    graph, half the time): without this, the server would carry it for its whole life (D-050).
    """
    # not glibc (musl, macOS): no malloc_trim, nothing to do
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim(0)


def session_options(num_threads: int) -> onnxruntime.SessionOptions:
    """num_threads intra-op threads, one inter-op thread, no spinning, all graph optimizations."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    spinning = "1" if ALLOW_SPINNING else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    return options


class OnnxEngine(NetworkEngine):
    """gigaam_api.engines.base.Engine on ONNX Runtime's CPU provider.

    Build it with from_files() (exports the checkpoint when no current export is cached) or
    from_directory() (an existing export).
    """

    def __init__(
        self, directory: Path, *, model_id: str | None = None, num_threads: int | None = None
    ) -> None:
        try:
            manifest = load_manifest(directory)
        except ManifestError as exc:
            raise ModelError(f"{directory} is not a usable ONNX export: {exc}") from exc
        tokenizer = load_tokenizer(
            DecodingConfig(vocabulary=manifest.vocabulary, vocab_size=manifest.blank_id),
            directory / TOKENIZER_FILE if manifest.vocabulary is None else None,
        )
        rnnt_weights = None
        if manifest.kind == "rnnt":
            with np.load(directory / RNNT_WEIGHTS_FILE, allow_pickle=False) as arrays:
                rnnt_weights = {name: arrays[name] for name in arrays.files}
        super().__init__(
            model_id=model_id or manifest.model_id,
            device="cpu",
            engine="onnx",
            precision=manifest.precision,
            tokenizer=tokenizer,
            decoder=greedy_decoder(
                manifest.kind, manifest.blank_id, manifest.max_symbols_per_step, rnnt_weights
            ),
            min_samples=manifest.min_samples,
            min_batch_samples=manifest.min_batch_samples,
            rows_per_run=1,
        )
        threads = num_threads if num_threads is not None else available_cpus()
        try:
            self._session = onnxruntime.InferenceSession(
                str(directory / GRAPH_FILE),
                sess_options=session_options(threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelError(
                f"ONNX Runtime cannot load {directory / GRAPH_FILE}: {exc}. Delete {directory} "
                "to have it exported again."
            ) from exc
        release_freed_heap()
        self._directory = directory
        logger.info(
            "Engine ready: model %s on onnxruntime %s (%s), %d intra-op threads",
            self.model_id,
            onnxruntime.__version__,
            manifest.precision,
            threads,
        )

    @classmethod
    def from_files(
        cls,
        checkpoint_path: Path,
        tokenizer_path: Path | None,
        *,
        model_id: str,
        num_threads: int | None = None,
        quantize_int8: bool = False,
    ) -> OnnxEngine:
        """Load the cached export of an official-format checkpoint, exporting it first when
        there is none or it was made from something else (in a child process; minutes).

        Args:
            checkpoint_path: the `.ckpt` file.
            tokenizer_path: its SentencePiece model (None for character models).
            model_id: the name reported as model_id.
            num_threads: intra-op threads (None: the CPUs this process may use).
            quantize_int8: the int8 graph (s8 per-channel MatMul weights) instead of fp32.

        Raises:
            ModelError (or a subclass): the export failed or the files are unusable.
        """
        precision: Precision = "int8" if quantize_int8 else "fp32"
        directory = prepare_export(
            checkpoint_path, tokenizer_path, precision=precision, model_id=model_id
        )
        return cls(directory, model_id=model_id, num_threads=num_threads)

    @property
    def directory(self) -> Path:
        """The export directory this engine runs from."""
        return self._directory

    def _run(self, batch: FloatArray, lengths: IntArray) -> tuple[FloatArray, IntArray]:
        outputs, frames = self._session.run(
            list(OUTPUT_NAMES), {INPUT_NAMES[0]: batch, INPUT_NAMES[1]: lengths}
        )
        return outputs, frames
