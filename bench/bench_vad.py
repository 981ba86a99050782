"""VAD benchmark: Silero windows scored per second on one thread, by runtime and call size.

The same 60 s of espeak-ng Russian speech through: the TorchScript model one window a call
(what the pipeline ran before D-060), silero's per-window ONNX model one window a call (what
get_speech_timestamps runs with onnx=True), the sequence ONNX model the pipeline uses at several
windows per call, and VadStream itself fed one-second blocks (model plus the region state
machine). Best of three passes; ratios against the TorchScript row.

    nice -n 5 .venv/bin/python -m bench.bench_vad
"""

from __future__ import annotations

import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch

from bench.common import SAMPLE_RATE, SPEECH, load_average, report_header
from gigaam_api.pipeline.vad import (
    CONTEXT_SAMPLES,
    WINDOW_SAMPLES,
    SileroVad,
    bundled_model_path,
)
from gigaam_api.types import VadOptions
from testkit.audio import run_ffmpeg, synthesize_ru

AUDIO_S = 60
PASSES = 3


def _speech() -> npt.NDArray[np.float32]:
    with tempfile.TemporaryDirectory(prefix="bench-vad-") as tmp:
        raw, resampled = synthesize_ru(SPEECH * 3, Path(tmp) / "raw.wav"), Path(tmp) / "speech.wav"
        run_ffmpeg("-i", str(raw), "-ac", "1", "-ar", str(SAMPLE_RATE), str(resampled))
        with wave.open(str(resampled)) as reader:
            samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    audio = np.tile(samples, -(-AUDIO_S * SAMPLE_RATE // len(samples)))[: AUDIO_S * SAMPLE_RATE]
    return audio.astype(np.float32) / np.float32(32768.0)


def _one_thread_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _with_context(windows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    context = np.zeros((len(windows), CONTEXT_SAMPLES), dtype=np.float32)
    context[1:] = windows[:-1, -CONTEXT_SAMPLES:]
    return np.concatenate([context, windows], axis=1)


Scorer = Callable[[npt.NDArray[np.float32]], None]


def torchscript() -> Scorer:
    from silero_vad import load_silero_vad

    model = load_silero_vad(onnx=False)

    def run(windows: npt.NDArray[np.float32]) -> None:
        model.reset_states()
        with torch.no_grad():
            for window in windows:
                model(torch.from_numpy(window), SAMPLE_RATE)

    return run


def per_window_onnx() -> Scorer:
    session = _one_thread_session(bundled_model_path().with_name("silero_vad.onnx"))
    rate = np.array(SAMPLE_RATE, dtype=np.int64)

    def run(windows: npt.NDArray[np.float32]) -> None:
        state = np.zeros((2, 1, 128), dtype=np.float32)
        for row in _with_context(windows):
            _, state = session.run(None, {"input": row[None], "state": state, "sr": rate})

    return run


def sequence_onnx(per_call: int) -> Scorer:
    session = _one_thread_session(bundled_model_path())

    def run(windows: npt.NDArray[np.float32]) -> None:
        h = c = np.zeros((1, 1, 128), dtype=np.float32)
        rows = _with_context(windows)
        for start in range(0, len(rows), per_call):
            _, h, c = session.run(None, {"input": rows[start : start + per_call], "h": h, "c": c})

    return run


def vad_stream() -> Scorer:
    vad = SileroVad.load()

    def run(windows: npt.NDArray[np.float32]) -> None:
        stream = vad.stream(VadOptions())
        audio = (windows.reshape(-1) * 32768.0).astype(np.int16)
        for start in range(0, len(audio), SAMPLE_RATE):
            stream.feed(audio[start : start + SAMPLE_RATE])
        stream.finish()

    return run


def main() -> None:
    torch.set_num_threads(1)
    audio = _speech()
    windows = audio[: len(audio) // WINDOW_SAMPLES * WINDOW_SAMPLES].reshape(-1, WINDOW_SAMPLES)
    cases: list[tuple[str, Scorer]] = [
        ("TorchScript, 1 window a call (before)", torchscript()),
        ("per-window ONNX, 1 window a call (get_speech_timestamps)", per_window_onnx()),
        *[(f"sequence ONNX, {n} per call", sequence_onnx(n)) for n in (1, 8, 32, 512)],
        ("VadStream.feed, 1 s blocks (the pipeline)", vad_stream()),
    ]
    print(report_header(f", torch {torch.__version__}, onnxruntime {ort.__version__}"))
    print(f"audio: {AUDIO_S} s espeak-ng Russian speech, {len(windows)} windows; one thread; "
          f"best of {PASSES} passes, models loaded beforehand")  # fmt: skip
    print("| how | windows/s | × real time | × TorchScript |")
    print("|---|---|---|---|")
    baseline = 0.0
    for name, run in cases:
        best = float("inf")
        for _ in range(PASSES):
            started = time.perf_counter()
            run(windows)
            best = min(best, time.perf_counter() - started)
        rate = len(windows) / best
        baseline = baseline or rate
        print(f"| {name} | {rate:,.0f} | {AUDIO_S / best:,.0f} | {rate / baseline:.1f} |")
    print(load_average())


if __name__ == "__main__":
    main()
