"""Exports a checkpoint's network to ONNX, with the files and manifest the ONNX engine loads.

`python -m gigaam_api.engines.onnx_export CHECKPOINT --out DIR [--tokenizer T] [--precision P]`
is what engines/onnx_cache.py runs in a child process: torch, onnx and the quantizer are imported
here and nowhere on the serving path. The graph is GigaAM.forward traced by torch's TorchScript
exporter (opset 17, dynamic batch and length; see D-042); the network has no data-dependent
Python branch, and a tracer warning fails the export rather than freezing one. int8 is ONNX
Runtime's dynamic quantization with s8 weights per output channel on MatMul only (D-045).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import shutil
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

from gigaam_api import __version__
from gigaam_api.engines.onnx_cache import (
    GRAPH_FILE,
    INPUT_NAMES,
    MANIFEST_FILE,
    OPSET,
    OUTPUT_NAMES,
    RNNT_WEIGHTS_FILE,
    TOKENIZER_FILE,
    Manifest,
    Precision,
    SourceFile,
)
from gigaam_api.model.gigaam import load_network
from gigaam_api.model.heads import RnntHead

logger = logging.getLogger(__name__)

_EXAMPLE_SECONDS = (2.0, 1.5)
"""The traced example: two samples of different lengths, so padding is part of the trace."""
_FP32_SCOPES = ("/preprocessor/",)
"""Graph nodes under these module scopes keep fp32 weights: the mel filterbank's MatMul would
otherwise quantize a power spectrum spanning twelve orders of magnitude."""


def export_graph(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
) -> None:
    """Trace `module` into an ONNX file with the TorchScript exporter at OPSET.

    Raises:
        torch.jit.TracerWarning: with dynamic axes, a Python value computed from a tensor would
            be frozen into the graph (the graph would then be wrong for other lengths). A graph
            without dynamic axes has one shape, so there the warnings are ignored.
    """
    tracer_warnings: Literal["error", "ignore"] = "error" if dynamic_axes else "ignore"
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter(tracer_warnings, torch.jit.TracerWarning)  # type: ignore[attr-defined]  # public, not re-exported
        # the exporter announces its own deprecation and notes Slice folds it skips (v1/v2)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Constant folding", category=UserWarning)
        torch.onnx.export(
            module,
            example_inputs,
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={name: dict(axes) for name, axes in dynamic_axes.items()},
            do_constant_folding=True,
        )


def quantize_graph(source: Path, target: Path, keep_fp32: Callable[[str], bool]) -> None:
    """int8 copy of a graph: QInt8 weights per channel on every MatMul with a constant weight,
    except the nodes keep_fp32 names; Conv (depthwise, subsampling, DFT) stays fp32."""
    model = onnx.load(str(source))
    excluded = [node.name for node in model.graph.node if keep_fp32(node.name)]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs generic advice through the root logger
    try:
        quantize_dynamic(
            model,
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=excluded,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)


def export_model(
    checkpoint: Path,
    tokenizer: Path | None,
    out: Path,
    *,
    precision: Precision,
    model_id: str,
) -> Manifest:
    """Write GRAPH_FILE, RNNT_WEIGHTS_FILE (RNN-T), TOKENIZER_FILE (SentencePiece) and
    MANIFEST_FILE into the existing directory `out`; returns the manifest written."""
    loaded = load_network(checkpoint, tokenizer)
    network, config = loaded.network, loaded.network.config
    samples = [int(seconds * config.features.sample_rate) for seconds in _EXAMPLE_SECONDS]
    generator = torch.Generator().manual_seed(0)
    waveforms = torch.randn(len(samples), max(samples), generator=generator) * 0.1
    lengths = torch.tensor(samples, dtype=torch.long)
    files: list[str] = [GRAPH_FILE]
    if isinstance(network.head, RnntHead):
        np.savez(out / RNNT_WEIGHTS_FILE, allow_pickle=False, **network.head.search_weights())
        files.append(RNNT_WEIGHTS_FILE)
    if tokenizer is not None:
        shutil.copyfile(tokenizer, out / TOKENIZER_FILE)
        files.append(TOKENIZER_FILE)
    fp32_graph = out / (GRAPH_FILE if precision == "fp32" else "fp32.onnx")
    logger.info("tracing %s into %s", checkpoint.name, fp32_graph.name)
    export_graph(
        network,
        (waveforms, lengths),
        fp32_graph,
        input_names=INPUT_NAMES,
        output_names=OUTPUT_NAMES,
        dynamic_axes={
            "waveforms": {0: "batch", 1: "samples"},
            "lengths": {0: "batch"},
            "outputs": {0: "batch", 1: "frames"},
            "frames": {0: "batch"},
        },
    )
    manifest = Manifest(
        model_id=model_id,
        kind=config.kind,
        precision=precision,
        blank_id=config.blank_id,
        vocabulary=config.decoding.vocabulary,
        max_symbols_per_step=config.decoding.max_symbols_per_step,
        min_samples=network.min_samples,
        min_batch_samples=network.min_batch_samples,
        checkpoint=SourceFile.of(checkpoint),
        tokenizer=SourceFile.of(tokenizer) if tokenizer is not None else None,
        files={},
        versions={
            "gigaam_api": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        notes={
            "exporter": "torch.onnx.export, TorchScript (dynamo=False)",
            "int8": "dynamic; QInt8 weights per channel on MatMul only; preprocessor fp32",
        },
    )
    del loaded, network  # the int8 step needs the memory more than the torch weights
    gc.collect()
    if precision == "int8":
        logger.info("quantizing %s to int8", fp32_graph.name)
        quantize_graph(fp32_graph, out / GRAPH_FILE, lambda name: name.startswith(_FP32_SCOPES))
        fp32_graph.unlink()
    sizes = {name: (out / name).stat().st_size for name in files}
    manifest = dataclasses.replace(manifest, files=sizes)
    (out / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="an existing, empty directory")
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    parser.add_argument("--model-id", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    manifest = export_model(
        args.checkpoint,
        args.tokenizer,
        args.out,
        precision=args.precision,
        model_id=args.model_id,
    )
    logger.info("wrote %s", ", ".join(f"{n} ({s / 1e6:.1f} MB)" for n, s in manifest.files.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
