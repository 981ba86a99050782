"""ORT's thread pool: does letting workers spin cost an idle core between batches and requests?

Each setting runs in its own process: the best of 3 passes on one 20 s chunk, then the CPU the
process burns (user + system, all threads) while the caller sleeps between passes (the pipeline
decoding and running VAD) and during 2 s of idleness after the last request.

    .venv/bin/python -m bench.spinning GRAPH [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

GAP_S = 0.3
IDLE_S = 2.0


def _cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def measure(graph: str, threads: int, spinning: bool) -> dict[str, float]:
    import onnxruntime

    from gigaam_api.engines import onnx as onnx_engine

    onnx_engine.ALLOW_SPINNING = spinning
    session = onnxruntime.InferenceSession(graph, onnx_engine.session_options(threads))
    feeds = {
        "waveforms": np.random.default_rng(0).normal(0.0, 0.1, (1, 320_000)).astype(np.float32),
        "lengths": np.array([320_000], dtype=np.int64),
    }
    session.run(None, feeds)
    best, gap_cpu = float("inf"), 0.0
    for _ in range(3):
        started = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - started)
        before = _cpu_s()
        time.sleep(GAP_S)
        gap_cpu += _cpu_s() - before
    before = _cpu_s()
    time.sleep(IDLE_S)
    return {
        "run_s": best,
        "gap_cpu": gap_cpu / (3 * GAP_S),
        "idle_cpu": (_cpu_s() - before) / IDLE_S,
    }


def spinning_report(graph: str, threads: int) -> str:
    rows = []
    for spinning in (True, False):
        child = subprocess.run(
            [sys.executable, "-m", "bench.spinning", graph, "--threads", str(threads),
             "--one", "1" if spinning else "0"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        result = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append(
            f"| {'on (ORT default)' if spinning else 'off (ours)'} | {result['run_s']:.3f} "
            f"| {result['gap_cpu']:.2f} | {result['idle_cpu']:.2f} |"
        )
    return "\n".join(
        [
            f"ORT intra-op spinning, ORT int8 v3_ctc, 20 s chunk, {threads} threads "
            f"(CPU = cores busy on average while the caller sleeps):",
            f"| spinning | network s | CPU in {GAP_S:.1f} s gaps between runs "
            f"| CPU in {IDLE_S:.0f} s idle after |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("graph")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", choices=("0", "1"))
    args = parser.parse_args()
    if args.one is not None:
        sys.stdout.write(json.dumps(measure(args.graph, args.threads, args.one == "1")) + "\n")
        return
    sys.stdout.write(spinning_report(args.graph, args.threads))


if __name__ == "__main__":
    main()
