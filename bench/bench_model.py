"""Model benchmark: full-size v3_ctc and v3_rnnt (random weights, real 768×16 shapes) on 60 s.

The 60 s of synthesized Russian speech (espeak-ng) are cut into 3 chunks of 20 s and run as one
batch, as the pipeline does for long audio. Each configuration runs in its own subprocess so
peak RSS is its own. Prints machine, commit, command and a markdown table.

    nice -n 5 .venv/bin/python -m bench.bench_model [--threads 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from bench.common import REPO, SAMPLE_RATE, SPEECH, peak_rss_mb, report_header
from gigaam_api.engines.pytorch import TorchEngine
from testkit.audio import synthesize_ru

AUDIO_S = 60
CHUNK_S = 20


@dataclass(frozen=True)
class Measurement:
    model: str
    int8: bool
    load_s: float
    features_s: float
    encoder_s: float
    decoding_s: float
    peak_rss_mb: float

    @property
    def total_s(self) -> float:
        return self.features_s + self.encoder_s + self.decoding_s


def synthesize_speech(directory: Path) -> npt.NDArray[np.float32]:
    """60 s of 16 kHz mono espeak-ng Russian speech (the text looped to fill the minute)."""
    spoken = synthesize_ru(SPEECH * 3, directory / "speech.wav")  # 16 kHz mono s16
    with wave.open(str(spoken), "rb") as reader:
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    speech = samples.astype(np.float32) / 32768.0
    repeats = int(np.ceil(AUDIO_S * SAMPLE_RATE / len(speech)))
    return np.tile(speech, repeats)[: AUDIO_S * SAMPLE_RATE].astype(np.float32)


def measure_one(
    checkpoint: Path, audio_path: Path, model: str, int8: bool, threads: int, repeats: int
) -> Measurement:
    """Load once, warm up once, then time `repeats` passes; report the fastest pass per stage."""
    started = time.perf_counter()
    engine = TorchEngine.from_files(
        checkpoint, None, model_id=model, device="cpu", num_threads=threads, quantize_int8=int8
    )
    load_s = time.perf_counter() - started
    audio = np.load(audio_path)
    chunk = CHUNK_S * SAMPLE_RATE
    batch = torch.from_numpy(audio.reshape(AUDIO_S // CHUNK_S, chunk).copy())
    lengths = torch.full((batch.shape[0],), chunk, dtype=torch.long)
    network = engine.network
    best = [float("inf")] * 3
    for attempt in range(repeats + 1):
        with torch.inference_mode():
            t0 = time.perf_counter()
            features, feature_lengths = network.preprocessor(batch, lengths)
            t1 = time.perf_counter()
            encoded, encoded_lengths = network.encoder(features, feature_lengths)
            outputs = network.head(encoded)
            t2 = time.perf_counter()
            decoded = engine.decoder.decode(outputs.numpy(), encoded_lengths.numpy())
            texts = [engine.tokenizer.decode(tokens.token_ids) for tokens in decoded]
            t3 = time.perf_counter()
        assert len(texts) == batch.shape[0]
        if attempt > 0:  # the first pass warms allocators and kernels
            best = [min(b, t) for b, t in zip(best, (t1 - t0, t2 - t1, t3 - t2), strict=True)]
    return Measurement(model, int8, load_s, best[0], best[1], best[2], peak_rss_mb())


def _table(results: list[Measurement]) -> str:
    rows = [
        "| model | weights | load s | features s | encoder s | decoding s | total s | RTFx "
        "| peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.model} | {'int8 dynamic' if r.int8 else 'fp32'} | {r.load_s:.1f} "
            f"| {r.features_s:.3f} | {r.encoder_s:.2f} | {r.decoding_s:.3f} | {r.total_s:.2f} "
            f"| {AUDIO_S / r.total_s:.1f} | {r.peak_rss_mb:.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", nargs=4, metavar=("CKPT", "AUDIO", "MODEL", "INT8"))
    args = parser.parse_args()
    if args.one:  # child process: one configuration, JSON on stdout
        checkpoint, audio, model, int8 = args.one
        result = measure_one(
            Path(checkpoint), Path(audio), model, int8 == "1", args.threads, args.repeats
        )
        sys.stdout.write(json.dumps(asdict(result)) + "\n")
        return

    from testkit.checkpoints import write_checkpoint

    directory = Path(tempfile.mkdtemp(prefix="gigaam-bench-"))
    try:
        audio_path = directory / "audio.npy"
        np.save(audio_path, synthesize_speech(directory))
        results: list[Measurement] = []
        for model in ("v3_ctc", "v3_rnnt"):
            checkpoint = write_checkpoint(directory / f"{model}.ckpt", model, full_size=True)
            for int8 in (False, True):
                child = subprocess.run(
                    [sys.executable, "-m", "bench.bench_model", "--threads", str(args.threads),
                     "--repeats", str(args.repeats), "--one", str(checkpoint), str(audio_path),
                     model, "1" if int8 else "0"],
                    check=True, capture_output=True, text=True, cwd=REPO,
                )  # fmt: skip
                results.append(Measurement(**json.loads(child.stdout.strip().splitlines()[-1])))
            checkpoint.unlink()
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    command = " ".join([Path(sys.executable).name, *sys.argv])
    report = [
        report_header(f", torch {torch.__version__}"),
        f"command: {command}",
        f"audio: {AUDIO_S} s espeak-ng Russian speech as {AUDIO_S // CHUNK_S} chunks of "
        f"{CHUNK_S} s in one batch; threads={args.threads}; best of {args.repeats} timed passes "
        "after one warm-up; random weights with the real v3 shapes (768×16)",
        "",
        _table(results),
    ]
    sys.stdout.write("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
