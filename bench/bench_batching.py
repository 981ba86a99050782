"""Batching on a CPU: the same chunks through the network as padded batches of 1, 2 and 4.

Full-size random-weight v3_ctc on ORT fp32, ORT int8 and torch fp32; 40 chunks of 3–25 s (the
lengths VAD chunking gives), each configuration and batch size in its own process (its own peak
RSS). The engines' own `transcribe_batch` runs one row per call on a CPU (D-051); this bench
calls the network directly to show why.

    nice -n 5 .venv/bin/python -m bench.bench_batching [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, SAMPLE_RATE, peak_rss_mb, report_header

CONFIGS = (("onnx", "int8"), ("onnx", "fp32"), ("torch", "fp32"))
BATCH_SIZES = (1, 2, 4)


def _chunks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3 * SAMPLE_RATE, 25 * SAMPLE_RATE, size=40)
    return [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in lengths]


def measure(runtime: str, precision: str, checkpoint: Path, batch_size: int, threads: int) -> str:
    """Child process: seconds for all chunks at this batch size, and the peak RSS."""
    from gigaam_api.engines.network import NetworkEngine, pad_batch

    engine: NetworkEngine
    if runtime == "onnx":
        from gigaam_api.engines.onnx import OnnxEngine

        engine = OnnxEngine.from_files(
            checkpoint, None, model_id="v3_ctc", num_threads=threads,
            quantize_int8=precision == "int8",
        )  # fmt: skip
    else:
        from gigaam_api.engines.pytorch import TorchEngine

        engine = TorchEngine.from_files(
            checkpoint, None, model_id="v3_ctc", device="cpu", num_threads=threads
        )
    chunks = _chunks()
    engine.frame_outputs(chunks[:1])  # warm-up
    started = time.perf_counter()
    for first in range(0, len(chunks), batch_size):
        batch, lengths = pad_batch(chunks[first : first + batch_size], 0)
        engine.decoder.decode(*engine._run(batch, lengths))
    seconds = time.perf_counter() - started
    return json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", nargs=4, metavar=("RUNTIME", "PRECISION", "CKPT", "BATCH"))
    args = parser.parse_args()
    if args.one:
        runtime, precision, checkpoint, batch_size = args.one
        print(measure(runtime, precision, Path(checkpoint), int(batch_size), args.threads))
        return

    from gigaam_api.engines.onnx_cache import prepare_export
    from testkit.checkpoints import write_checkpoint

    audio_s = sum(chunk.shape[0] for chunk in _chunks()) / SAMPLE_RATE
    print(report_header())
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"audio: 40 chunks of 3–25 s, {audio_s:.0f} s in all; threads={args.threads}")
    print("| engine | batch size | seconds | RTFx | × batch of 1 | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as tmp:
        checkpoint = write_checkpoint(Path(tmp) / "v3_ctc.ckpt", "v3_ctc", full_size=True)
        prepare_export(checkpoint, None, precision="fp32", model_id="v3_ctc")
        prepare_export(checkpoint, None, precision="int8", model_id="v3_ctc")
        for runtime, precision in CONFIGS:
            single = 0.0
            for batch_size in BATCH_SIZES:
                child = subprocess.run(
                    [sys.executable, "-m", "bench.bench_batching", "--threads", str(args.threads),
                     "--one", runtime, precision, str(checkpoint), str(batch_size)],
                    check=True, capture_output=True, text=True, cwd=REPO,
                )  # fmt: skip
                result = json.loads(child.stdout.strip().splitlines()[-1])
                single = single or result["seconds"]
                print(
                    f"| {runtime} {precision} | {batch_size} | {result['seconds']:.1f} "
                    f"| {audio_s / result['seconds']:.1f} | {single / result['seconds']:.2f} "
                    f"| {result['peak_rss_mb']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
