"""Pipeline benchmark: file path -> last segment, against the engine alone on the same chunks.

Builds FLAC files of the requested lengths in a temp dir: each minute holds `ratio` x 60 s of
espeak-ng Russian speech (pauses included) followed by silence, so every hour is decoded and
VAD-scored in full while only the speech reaches the model. Each size runs in its own subprocess
with the full-size random-weight v3_ctc on each engine of --engines (torch and ONNX Runtime, fp32
and int8, the ONNX graphs exported beforehand so each child loads from the cache as the server
does): one warm-up batch, then end to
end (RTFx, seconds to the first segment, peak RSS while transcribing, the spool's peak disk use,
where the time went), then engine-only: the very batches the run sent, straight through the
engine. "e2e % of engine" = engine-only seconds / end-to-end seconds (100 % = no overhead);
"× torch" = RTFx over torch fp32's on the same file in the same run.
--baseline REF runs the same measurement on the package as of a git ref, side by side.

    nice -n 5 .venv/bin/python -m bench.bench_pipeline [--sizes 60,3600,36000]
        [--speech-ratios 1,1,0.1] [--threads 2] [--batch-size 4]
        [--engines torch,torch-int8,onnx,onnx-int8]
        [--baseline REF] [--max-wall-s 0]
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.common import REPO, SAMPLE_RATE, SPEECH, load_average, peak_rss_mb, report_header
from testkit.audio import run_ffmpeg, synthesize_ru
from testkit.wrapping import Wrapping

if TYPE_CHECKING:
    from gigaam_api.engines.base import Engine, Waveform
    from gigaam_api.types import ChunkResult

PERIOD_S = 60
ENGINES = ("torch", "torch-int8", "onnx", "onnx-int8")
"""Engine configurations: the ENGINE setting, with `-int8` for QUANTIZE_INT8=true."""


@dataclass(frozen=True)
class Measurement:
    code: str
    engine: str
    audio_s: float
    speech_ratio: float
    wall_s: float
    first_segment_s: float
    segments: int
    peak_rss_mb: float
    transcribe_peak_rss_mb: float
    spool_peak_mb: float
    finished: bool
    engine_in_run_s: float
    engine_only_s: float
    cpu_s: float
    """CPU seconds of the whole run (every thread, and ffmpeg)."""
    engine_only_cpu_s: float
    times: dict[str, float] | None
    """The run's own split (PipelineRun.times), when the measured code has one."""

    @property
    def rtfx(self) -> float:
        return self.audio_s / self.wall_s

    @property
    def share_of_engine_speed(self) -> float:
        return self.engine_only_s / self.wall_s


class _SpoolWatch:
    """Samples the size of a spool directory from a thread and keeps the largest total."""

    def __init__(self, directory: Path, interval_s: float = 0.05) -> None:
        self._directory = directory
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak_bytes = 0
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _size_bytes(self) -> int:
        total = 0
        try:
            for entry in self._directory.iterdir():
                total += entry.stat().st_size
        except FileNotFoundError:  # a spool file (or the directory) went while we looked
            pass
        return total

    def _watch(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak_bytes = max(self.peak_bytes, self._size_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_bytes


class _RecordingEngine(Wrapping):
    """Passes batches to the engine, timing each call and writing its waveforms to a file (as
    the int16 they were decoded from) so the same batches can be replayed engine-only."""

    def __init__(self, engine: Engine, path: Path) -> None:
        super().__init__(engine)
        self._engine = engine
        self._file = path.open("wb")
        self.path = path
        self.batch_lengths: list[list[int]] = []
        self.engine_s = 0.0

    def transcribe_batch(
        self, waveforms: Sequence[Waveform], *, word_timestamps: bool = True
    ) -> list[ChunkResult]:
        started = time.perf_counter()
        results = self._engine.transcribe_batch(waveforms, word_timestamps=word_timestamps)
        self.engine_s += time.perf_counter() - started
        for waveform in waveforms:
            self._file.write(np.round(waveform * 32768.0).astype(np.int16).tobytes())
        self.batch_lengths.append([len(w) for w in waveforms])
        return results

    def close(self) -> None:
        self._file.close()


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its reaped children (ffmpeg)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _replay_engine_only(
    engine: Engine, path: Path, batch_lengths: list[list[int]]
) -> tuple[float, float]:
    """Wall and CPU seconds the engine alone needs for the recorded batches (reading them is
    not counted)."""
    wall_s = cpu_s = 0.0
    with path.open("rb") as recorded:
        for lengths in batch_lengths:
            waveforms = [
                np.frombuffer(recorded.read(2 * n), dtype=np.int16).astype(np.float32) / 32768.0
                for n in lengths
            ]
            started, cpu_started = time.perf_counter(), _cpu_s()
            engine.transcribe_batch(waveforms, word_timestamps=True)
            wall_s += time.perf_counter() - started
            cpu_s += _cpu_s() - cpu_started
    return wall_s, cpu_s


def load_engine(name: str, checkpoint: Path, threads: int) -> Engine:
    """The engine under test, loaded as the server would load it (ONNX: from the cached export)."""
    runtime, _, precision = name.partition("-")
    if runtime == "onnx":
        from gigaam_api.engines.onnx import OnnxEngine

        return OnnxEngine.from_files(
            checkpoint, None, model_id="v3_ctc", num_threads=threads, quantize_int8=bool(precision)
        )
    if runtime == "torch":
        from gigaam_api.engines.pytorch import TorchEngine

        return TorchEngine.from_files(
            checkpoint, None, model_id="v3_ctc", device="cpu", num_threads=threads,
            quantize_int8=bool(precision),
        )  # fmt: skip
    raise SystemExit(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")


def _export_onnx(checkpoint: Path, engines: Sequence[str]) -> None:
    """Export the graphs the ONNX configurations need, so their runs start from the cache."""
    from gigaam_api.engines.onnx_cache import prepare_export

    for name in engines:
        runtime, _, precision = name.partition("-")
        if runtime == "onnx":
            prepare_export(
                checkpoint, None, precision="int8" if precision else "fp32", model_id="v3_ctc"
            )


def _speech_s(speech_ratio: float) -> float:
    return max(1.0, PERIOD_S * speech_ratio)


def describe_file(seconds: int, speech_ratio: float) -> str:
    """What build_file writes, in words, for the report."""
    speech_s = _speech_s(speech_ratio)
    silence_s = max(0.0, PERIOD_S - speech_s)
    return (
        f"{seconds} s FLAC 16 kHz mono: {PERIOD_S} s periods of {speech_s:.0f} s espeak-ng "
        f"Russian speech (bench.common.SPEECH looped, its own pauses included) then "
        f"{silence_s:.0f} s digital silence, cut at {seconds} s"
    )


def build_file(directory: Path, seconds: int, speech_ratio: float) -> Path:
    """`seconds` of audio (see describe_file): per minute, speech then silence (FLAC)."""
    spoken = synthesize_ru(SPEECH * 4, directory / "spoken.wav")
    speech_s = _speech_s(speech_ratio)
    period = directory / f"period_{speech_ratio}.wav"
    # loop the speech to fill its share, then pad the minute with silence
    run_ffmpeg(
        *("-stream_loop", "-1", "-t", f"{speech_s}", "-i", str(spoken)),
        *("-af", f"apad=whole_dur={PERIOD_S}", "-ar", str(SAMPLE_RATE), "-ac", "1"),
        str(period),
    )
    listing = directory / "periods.txt"
    periods = -(-seconds // PERIOD_S)
    listing.write_text(f"file '{period}'\n" * periods, encoding="utf-8")
    path = directory / f"audio_{seconds}s.flac"
    run_ffmpeg(*("-f", "concat", "-safe", "0", "-i", str(listing), "-t", str(seconds)), str(path))
    return path


def measure(
    audio: Path,
    checkpoint: Path,
    engine_name: str,
    threads: int,
    batch_size: int,
    max_wall_s: float,
) -> dict[str, object]:
    """Child process: load, warm up, run end to end, replay engine-only; the figures."""
    from gigaam_api.pipeline.transcribe import Pipeline
    from gigaam_api.pipeline.vad import SileroVad
    from gigaam_api.types import TranscribeOptions

    engine = load_engine(engine_name, checkpoint, threads)
    noise = np.random.default_rng(0).standard_normal(20 * SAMPLE_RATE).astype(np.float32) * 0.05
    engine.transcribe_batch([noise])  # warm-up: first-call allocations are not the pipeline's
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as recordings:
        recorder = _RecordingEngine(engine, Path(recordings) / "batches.s16")
        pipeline = Pipeline(recorder, SileroVad.load())
        options = TranscribeOptions(batch_size=batch_size)
        # reset VmHWM so the peak below is the one while transcribing, not the model load's
        load_peak_mb = peak_rss_mb()
        Path("/proc/self/clear_refs").write_text("5")
        started, cpu_started = time.perf_counter(), _cpu_s()
        transcription = pipeline.transcribe(audio, options, threading.Event())
        spool = _SpoolWatch(transcription.spool_dir)
        first_segment_s = -1.0
        segments = 0
        last_end_s = 0.0
        finished = True
        for segment in transcription:
            segments += 1
            last_end_s = segment.end
            if first_segment_s < 0:
                first_segment_s = time.perf_counter() - started
            if max_wall_s and time.perf_counter() - started > max_wall_s:
                finished = False
                break
        wall_s = time.perf_counter() - started
        # a run stopped early has transcribed up to its last segment, not the whole file
        audio_s = transcription.duration_s if finished else last_end_s
        times = getattr(transcription, "times", None)
        transcription.close()
        cpu_s = _cpu_s() - cpu_started
        spool_peak_bytes = spool.stop()
        transcribe_peak_rss_mb = peak_rss_mb()
        recorder.close()
        engine_only_s, engine_only_cpu_s = _replay_engine_only(
            engine, recorder.path, recorder.batch_lengths
        )
    return {
        "audio_s": audio_s,
        "wall_s": wall_s,
        "first_segment_s": first_segment_s,
        "segments": segments,
        "peak_rss_mb": max(load_peak_mb, transcribe_peak_rss_mb),
        "transcribe_peak_rss_mb": transcribe_peak_rss_mb,
        "spool_peak_mb": spool_peak_bytes / 2**20,
        "finished": finished,
        "engine_in_run_s": recorder.engine_s,
        "engine_only_s": engine_only_s,
        "cpu_s": cpu_s,
        "engine_only_cpu_s": engine_only_cpu_s,
        "times": asdict(times) if times is not None else None,
    }


def _table(rows: list[Measurement]) -> str:
    lines = [
        "| code | engine | audio | speech | wall s | RTFx | × torch | engine-only s "
        "| e2e % of engine | first segment s | peak RSS MB | peak RSS while transcribing MB "
        "| spool peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    torch_rtfx = {(m.code, m.audio_s, m.speech_ratio): m.rtfx for m in rows if m.engine == "torch"}
    for m in rows:
        note = "" if m.finished else " (stopped at --max-wall-s)"
        base = torch_rtfx.get((m.code, m.audio_s, m.speech_ratio))
        ratio = "–" if base is None else f"{m.rtfx / base:.2f}"
        lines.append(
            f"| {m.code} | {m.engine} | {m.audio_s / 3600:.3g} h{note} | {m.speech_ratio:.0%} "
            f"| {m.wall_s:.1f} | {m.rtfx:.1f} | {ratio} | {m.engine_only_s:.1f} "
            f"| {m.share_of_engine_speed:.0%} | {m.first_segment_s:.2f} | {m.peak_rss_mb:.0f} "
            f"| {m.transcribe_peak_rss_mb:.0f} | {m.spool_peak_mb:.1f} |"
        )
    return "\n".join(lines)


def _profile(rows: list[Measurement]) -> str:
    lines = [
        "Where the time went, % of the end-to-end wall time (the producer thread's decode, VAD "
        "and spool overlap the consumer's engine and waiting; the baseline has no split):",
        "| code | engine | audio | engine in run | engine-only | consumer waiting | decode | VAD "
        "| spool | CPU s: e2e / engine-only / producer thread |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        t = m.times or {}

        def share(seconds: float | None, wall_s: float = m.wall_s) -> str:
            return "–" if seconds is None else f"{seconds / wall_s:.1%}"

        producer_cpu = f"{t['producer_cpu_s']:.1f}" if "producer_cpu_s" in t else "–"
        lines.append(
            f"| {m.code} | {m.engine} | {m.audio_s / 3600:.3g} h | {share(m.engine_in_run_s)} "
            f"| {share(m.engine_only_s)} | {share(t.get('wait_s'))} | {share(t.get('decode_s'))} "
            f"| {share(t.get('vad_s'))} | {share(t.get('spool_s'))} "
            f"| {m.cpu_s:.1f} / {m.engine_only_cpu_s:.1f} / {producer_cpu} |"
        )
    return "\n".join(lines)


def _export_package(ref: str, directory: Path) -> Path:
    """The gigaam_api package as of git `ref`, unpacked under `directory`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, "gigaam_api"],
        check=True,
        capture_output=True,
    ).stdout
    target = directory / f"code-{ref.replace('/', '_')}"
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="60,3600,36000", help="file lengths in seconds")
    parser.add_argument(
        "--speech-ratios", default="1,1,0.1", help="speech share per size (one value = all)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}"
    )
    parser.add_argument("--baseline", metavar="REF", help="also measure the package at this ref")
    parser.add_argument("--max-wall-s", type=float, default=0.0, help="stop a size early (0 = no)")
    parser.add_argument("--child", nargs=2, metavar=("AUDIO", "CHECKPOINT"), help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.code:  # measure another version of the package (--baseline)
            sys.path.insert(0, args.code)
        result = measure(
            Path(args.child[0]),
            Path(args.child[1]),
            args.engines,
            args.threads,
            args.batch_size,
            args.max_wall_s,
        )
        print(json.dumps(result))
        return

    from testkit.checkpoints import write_checkpoint

    sizes = [int(size) for size in args.sizes.split(",")]
    ratios = [float(ratio) for ratio in args.speech_ratios.split(",")]
    ratios = ratios * len(sizes) if len(ratios) == 1 else ratios
    if len(ratios) != len(sizes):
        parser.error("--speech-ratios needs one value or one per size")
    print(report_header())
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    engines = args.engines.split(",")
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        parser.error(f"unknown engines {unknown} (known: {', '.join(ENGINES)})")
    print(f"engines: {', '.join(engines)}; {args.threads} threads, BATCH_SIZE={args.batch_size}")
    rows: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        directory = Path(tmp)
        codes: list[tuple[str, list[str]]] = [("this tree", [])]
        if args.baseline:
            exported = _export_package(args.baseline, directory)
            codes.append((args.baseline, ["--code", str(exported)]))
        checkpoint = write_checkpoint(directory / "v3_ctc.ckpt", "v3_ctc", full_size=True)
        _export_onnx(checkpoint, engines)
        for size, ratio in zip(sizes, ratios, strict=True):
            print(f"file: {describe_file(size, ratio)}", flush=True)
            audio = build_file(directory, size, ratio)
            for (code, code_args), engine in itertools.product(codes, engines):
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.bench_pipeline",
                        *("--threads", str(args.threads), "--batch-size", str(args.batch_size)),
                        *("--engines", engine, "--max-wall-s", str(args.max_wall_s)),
                        *code_args,
                        *("--child", str(audio), str(checkpoint)),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                )
                result = json.loads(done.stdout.strip().splitlines()[-1])
                rows.append(Measurement(code=code, engine=engine, speech_ratio=ratio, **result))
                print(json.dumps({"size_s": size, **asdict(rows[-1])}), flush=True)
            audio.unlink()
    print(load_average())
    print(_table(rows))
    print()
    print(_profile(rows))


if __name__ == "__main__":
    main()
