"""What `release_freed_heap` (glibc malloc_trim) gives back after an ORT session is created.

Each start runs in a fresh process: create the session as OnnxEngine does, read the resident
size, trim, read it again. Run by bench_engines on the fp32 v3_ctc graph, or alone:

    .venv/bin/python -m bench.heap_trim GRAPH [--starts 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_one(graph: str, threads: int) -> dict[str, float]:
    """This (fresh) process: session, resident MB, trim, resident MB."""
    import onnxruntime

    from gigaam_api.engines.onnx import release_freed_heap, session_options

    session = onnxruntime.InferenceSession(
        graph, sess_options=session_options(threads), providers=["CPUExecutionProvider"]
    )
    before = _rss_mb()
    release_freed_heap()
    after = _rss_mb()
    del session
    return {"before_mb": before, "after_mb": after}


def heap_trim_report(graph: str, threads: int, starts: int = 4) -> str:
    rows = []
    for start in range(1, starts + 1):
        child = subprocess.run(
            [sys.executable, "-m", "bench.heap_trim", graph, "--threads", str(threads), "--one"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        result = json.loads(child.stdout.strip().splitlines()[-1])
        rows.append(
            f"| {start} | {result['before_mb']:.0f} | {result['after_mb']:.0f} "
            f"| {result['before_mb'] - result['after_mb']:.0f} |"
        )
    return "\n".join(
        [
            "Heap given back after loading the ORT fp32 v3_ctc graph (fresh process per start):",
            "| start | RSS after loading MB | after malloc_trim MB | returned MB |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("graph")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--starts", type=int, default=4)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sys.stdout.write(json.dumps(measure_one(args.graph, args.threads)) + "\n")
        return
    sys.stdout.write(heap_trim_report(args.graph, args.threads, args.starts))


if __name__ == "__main__":
    main()
