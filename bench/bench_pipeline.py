"""Pipeline benchmark: a file path to the last segment with the full-size random-weight v3_ctc.

Builds FLAC files of the requested lengths in a temp dir: each minute holds `ratio` x 60 s of
espeak-ng Russian speech (pauses included) followed by silence, so every hour is decoded and
VAD-scored in full while only the speech reaches the model. Each size runs in its own subprocess
(peak RSS is its own VmHWM, model load included; VmHWM is reset after loading for the peak
while transcribing): RTFx end to end, seconds to the first segment, peak RSS, and the spool's
peak disk use (its directory sampled every 50 ms).

    nice -n 5 .venv/bin/python -m bench.bench_pipeline [--sizes 60,3600,36000]
        [--speech-ratios 1,1,0.1] [--threads 2] [--batch-size 4] [--max-wall-s 0]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import REPO, SAMPLE_RATE, SPEECH, peak_rss_mb, report_header
from testkit.audio import run_ffmpeg, synthesize_ru

PERIOD_S = 60


@dataclass(frozen=True)
class Measurement:
    audio_s: float
    speech_ratio: float
    wall_s: float
    first_segment_s: float
    segments: int
    peak_rss_mb: float
    transcribe_peak_rss_mb: float
    spool_peak_mb: float
    finished: bool

    @property
    def rtfx(self) -> float:
        return self.audio_s / self.wall_s


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
    audio: Path, checkpoint: Path, threads: int, batch_size: int, max_wall_s: float
) -> None:
    """Child process: load, transcribe, print one JSON line."""
    from gigaam_api.engines.pytorch import TorchEngine
    from gigaam_api.pipeline.transcribe import Pipeline
    from gigaam_api.pipeline.vad import SileroVad
    from gigaam_api.types import TranscribeOptions

    engine = TorchEngine.from_files(
        checkpoint, None, model_id="v3_ctc", device="cpu", num_threads=threads
    )
    pipeline = Pipeline(engine, SileroVad.load())
    options = TranscribeOptions(batch_size=batch_size)
    # reset VmHWM so the second figure is the peak while transcribing, not the model load's
    load_peak_mb = peak_rss_mb()
    Path("/proc/self/clear_refs").write_text("5")
    started = time.perf_counter()
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
    transcription.close()
    spool_peak_bytes = spool.stop()
    result = {
        "audio_s": audio_s,
        "wall_s": wall_s,
        "first_segment_s": first_segment_s,
        "segments": segments,
        "peak_rss_mb": max(load_peak_mb, peak_rss_mb()),
        "transcribe_peak_rss_mb": peak_rss_mb(),
        "spool_peak_mb": spool_peak_bytes / 2**20,
        "finished": finished,
    }
    print(json.dumps(result))


def _table(rows: list[Measurement]) -> str:
    lines = [
        "| audio | speech share | wall s | RTFx | first segment s | segments | peak RSS MB "
        "| peak RSS while transcribing MB | spool peak disk MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        note = "" if m.finished else " (stopped at --max-wall-s)"
        lines.append(
            f"| {m.audio_s / 3600:.3g} h{note} | {m.speech_ratio:.0%} | {m.wall_s:.1f} "
            f"| {m.rtfx:.1f} | {m.first_segment_s:.2f} | {m.segments} | {m.peak_rss_mb:.0f} "
            f"| {m.transcribe_peak_rss_mb:.0f} | {m.spool_peak_mb:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="60,3600,36000", help="file lengths in seconds")
    parser.add_argument(
        "--speech-ratios", default="1,1,0.1", help="speech share per size (one value = all)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--max-wall-s", type=float, default=0.0, help="stop a size early (0 = no)")
    parser.add_argument("--child", nargs=2, metavar=("AUDIO", "CHECKPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(
            Path(args.child[0]), Path(args.child[1]), args.threads, args.batch_size, args.max_wall_s
        )
        return

    from testkit.checkpoints import write_checkpoint

    sizes = [int(size) for size in args.sizes.split(",")]
    ratios = [float(ratio) for ratio in args.speech_ratios.split(",")]
    ratios = ratios * len(sizes) if len(ratios) == 1 else ratios
    if len(ratios) != len(sizes):
        parser.error("--speech-ratios needs one value or one per size")
    print(report_header())
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    rows: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        directory = Path(tmp)
        checkpoint = write_checkpoint(directory / "v3_ctc.ckpt", "v3_ctc", full_size=True)
        for size, ratio in zip(sizes, ratios, strict=True):
            print(f"file: {describe_file(size, ratio)}", flush=True)
            audio = build_file(directory, size, ratio)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.bench_pipeline",
                    *("--threads", str(args.threads), "--batch-size", str(args.batch_size)),
                    *("--max-wall-s", str(args.max_wall_s), "--child", str(audio), str(checkpoint)),
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(Measurement(speech_ratio=ratio, **result))
            print(json.dumps({"size_s": size, **asdict(rows[-1])}), flush=True)
            audio.unlink()
    print(_table(rows))


if __name__ == "__main__":
    main()
