"""What word timestamps cost: one 20 s chunk through full-size v3_ctc vs grouping its words.

Jobs always compute word timestamps so one result serves every response format (D-081). The
model here has random weights, so its own token stream is not speech-like; the word step is
timed on a realistic one instead: 20 s of Russian text (~330 characters, ~60 words) spread over
the chunk's 500 encoder frames, grouped by the same tokenizer. Side by side in one run.

    nice -n 5 .venv/bin/python -m bench.bench_word_timestamps [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.common import SAMPLE_RATE, SPEECH, report_header
from gigaam_api.engines.pytorch import TorchEngine
from gigaam_api.model.timestamps import frame_shift_s, words_from_tokens

CHUNK_S = 20
FRAMES = 500  # v3 encoder frames of a 20 s chunk (40 ms each)
CHARACTERS = 330  # about 20 s of Russian speech


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """The fastest of `repeats` timed calls of run() after one warm-up call."""
    run()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from testkit.checkpoints import write_checkpoint

    directory = Path(tempfile.mkdtemp(prefix="gigaam-bench-"))
    try:
        checkpoint = write_checkpoint(directory / "v3_ctc.ckpt", "v3_ctc", full_size=True)
        engine = TorchEngine.from_files(
            checkpoint, None, model_id="v3_ctc", device="cpu", num_threads=args.threads
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    noise = np.random.default_rng(0).standard_normal(CHUNK_S * SAMPLE_RATE).astype(np.float32)
    chunk = 0.05 * noise
    model_s = best_of(args.repeats, lambda: engine.transcribe_batch([chunk], word_timestamps=False))

    tokenizer = engine.tokenizer
    ids_by_char = {tokenizer.piece(i): i for i in range(tokenizer.vocab_size)}
    text = (SPEECH * 2).lower()
    token_ids = [ids_by_char[c] for c in text if c in ids_by_char][:CHARACTERS]
    frames = [i * FRAMES // len(token_ids) for i in range(len(token_ids))]
    shift = frame_shift_s(float(CHUNK_S), FRAMES)
    words = words_from_tokens(token_ids, frames, tokenizer, shift)
    words_s = best_of(
        args.repeats * 100, lambda: words_from_tokens(token_ids, frames, tokenizer, shift)
    )

    command = " ".join([Path(sys.executable).name, *sys.argv])
    report = [
        report_header(f", torch {torch.__version__}"),
        f"command: {command}",
        f"one {CHUNK_S} s chunk; threads={args.threads}; best of {args.repeats} passes",
        "",
        "| step | time | share of the chunk |",
        "|---|---|---|",
        f"| v3_ctc forward + decode, no word timestamps | {model_s * 1000:.0f} ms | 100 % |",
        f"| word grouping, {len(token_ids)} tokens -> {len(words)} words "
        f"| {words_s * 1000:.3f} ms | {100 * words_s / model_s:.3f} % |",
    ]
    sys.stdout.write("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
