"""The whole pipeline on real files: real ffmpeg, real Silero VAD, the real TorchEngine (small
official-format checkpoint). Checks order, bounds, chunk limits, formats, failures, cancellation
and cleanup (no ffmpeg children, no spool files, no producer thread)."""

from __future__ import annotations

import gc
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from gigaam_api.engines.base import Engine, Waveform
from gigaam_api.engines.pytorch import TorchEngine
from gigaam_api.errors import (
    AudioDecodeError,
    AudioToolMissingError,
    AudioTooLongError,
    TranscriptionCancelledError,
)
from gigaam_api.pipeline.audio import Samples, probe_audio
from gigaam_api.pipeline.chunking import Chunk
from gigaam_api.pipeline.producer import THREAD_NAME
from gigaam_api.pipeline.transcribe import Pipeline
from gigaam_api.pipeline.vad import SileroVad, SpeechRegion, VadStream
from gigaam_api.types import ChunkResult, Segment, TranscribeOptions, VadOptions
from testkit.checkpoints import tokenizer_path_for
from testkit.wrapping import Wrapping
from tests.fixtures.audio import child_processes, wav_samples
from tests.fixtures.silero_reference import silero_speech_regions
from tests.reference import merge_regions

SR = 16000
THREADS = 2
OPTIONS = TranscribeOptions(batch_size=2)


class RecordingEngine(Wrapping):
    """The real engine, keeping a copy of every waveform it is given (to check chunking and the
    samples themselves from outside); `batches` are their lengths, batch by batch."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._engine = engine
        self.batches: list[list[int]] = []
        self.waveforms: list[Waveform] = []

    def transcribe_batch(
        self, waveforms: Sequence[Waveform], *, word_timestamps: bool = True
    ) -> list[ChunkResult]:
        self.batches.append([len(w) for w in waveforms])
        self.waveforms.extend(np.array(w, copy=True) for w in waveforms)
        return self._engine.transcribe_batch(waveforms, word_timestamps=word_timestamps)


class GatedEngine(RecordingEngine):
    """Holds every batch until `release` is set; `entered` tells that a batch is waiting."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.entered = threading.Event()
        self.release = threading.Event()

    def transcribe_batch(
        self, waveforms: Sequence[Waveform], *, word_timestamps: bool = True
    ) -> list[ChunkResult]:
        self.entered.set()
        assert self.release.wait(60)
        return super().transcribe_batch(waveforms, word_timestamps=word_timestamps)


def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    """Poll `condition` until it holds or the (generous) bound passes."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def process_state(pid: int) -> str | None:
    """The state letter of a process (R, S, Z…), None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return text[text.rindex(")") + 2]


@pytest.fixture(scope="module")
def engine(tiny_v3_ctc_checkpoint: Path) -> TorchEngine:
    return TorchEngine.from_files(
        tiny_v3_ctc_checkpoint, None, model_id="v3_ctc", device="cpu", num_threads=THREADS
    )


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad.load()


@pytest.fixture
def recorder(engine: TorchEngine) -> RecordingEngine:
    return RecordingEngine(engine)


@pytest.fixture
def spool_parent(tmp_path: Path) -> Iterator[Path]:
    parent = tmp_path / "spool"
    parent.mkdir()
    yield parent
    assert list(parent.iterdir()) == [], "a spool directory was left behind"
    assert child_processes() == [], "an ffmpeg process was left behind"
    assert producer_threads() == [], "a producer thread was left behind"


def producer_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


@pytest.fixture
def pipeline(recorder: RecordingEngine, vad: SileroVad, spool_parent: Path) -> Pipeline:
    return Pipeline(recorder, vad, temp_dir=spool_parent)


def run(pipeline: Pipeline, path: Path, options: TranscribeOptions = OPTIONS) -> list[Segment]:
    transcription = pipeline.transcribe(path, options, threading.Event())
    try:
        return list(transcription)
    finally:
        transcription.close()


def as_waveform(samples: Samples) -> Waveform:
    """int16 samples as the model's float32 waveform in [-1, 1) (what the engine must get)."""
    waveform: Waveform = samples.astype(np.float32) / np.float32(32768.0)
    return waveform


def envelope(waveform: Waveform, frame: int = SR // 50) -> Waveform:
    """RMS level of every 20 ms frame: survives lossy codecs and resampling, not wrong audio."""
    frames = len(waveform) // frame
    blocks = waveform[: frames * frame].astype(np.float64).reshape(frames, frame)
    levels: Waveform = np.sqrt((blocks**2).mean(axis=1)).astype(np.float32)
    return levels


def envelope_agreement(decoded: Waveform, original: Waveform, max_shift: int = 12) -> float:
    """Best correlation of the two envelopes over shifts up to 240 ms (a codec's own delay):
    about 1 for the same speech, under 0.35 for other or reversed audio."""
    a, b = envelope(decoded), envelope(original)
    best = -1.0
    for shift in range(-max_shift, max_shift + 1):
        x, y = a[max(0, shift) :], b[max(0, -shift) :]
        n = min(len(x), len(y))
        best = max(best, float(np.corrcoef(x[:n], y[:n])[0, 1]))
    return best


def reference_chunks(samples: Samples, options: TranscribeOptions) -> list[Chunk]:
    """The chunks the documented rule gives on silero's own regions of the whole file."""
    regions = silero_speech_regions(samples, options.vad)
    return [Chunk(*span) for span in merge_regions(regions, options.chunking, len(samples))]


def assert_well_formed(segments: list[Segment], duration_s: float) -> None:
    """Ids 0..n-1; segments in order, disjoint, inside the audio; words in order inside them."""
    assert [s.id for s in segments] == list(range(len(segments)))
    for segment in segments:
        assert 0.0 <= segment.start < segment.end <= duration_s + 1e-9
        assert segment.text and segment.text == segment.text.strip()
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end
        assert all(a.end <= b.start + 1e-9 for a, b in itertools.pairwise(segment.words))
    assert all(a.end <= b.start for a, b in itertools.pairwise(segments))


def test_long_speech_gives_ordered_chunked_segments(
    pipeline: Pipeline, recorder: RecordingEngine, speech_long: Path
) -> None:
    samples = wav_samples(speech_long)
    expected_chunks = reference_chunks(samples, OPTIONS)
    transcription = pipeline.transcribe(speech_long, OPTIONS, threading.Event())
    assert transcription.duration_s == probe_audio(speech_long).duration_s
    assert transcription.processed_s == 0.0
    segments = []
    progress = []  # processed_s seen as each segment arrives
    for segment in transcription:
        segments.append(segment)
        progress.append(transcription.processed_s)
    assert transcription.processed_s == transcription.duration_s
    assert transcription.duration_s == len(samples) / SR
    assert transcription.duration_s == pytest.approx(probe_audio(speech_long).duration_s, abs=0.05)
    assert_well_formed(segments, transcription.duration_s)
    assert len(segments) >= 3
    # the streaming VAD + planner cut exactly where the whole-file VAD + list planner cut
    assert [(s.start, s.end) for s in segments] == [(c.start_s, c.end_s) for c in expected_chunks]
    assert segments[0].start < 3.5 and segments[-1].end > transcription.duration_s - 5.0
    assert all(s.words for s in segments)
    chunk_lengths = [n for batch in recorder.batches for n in batch]
    assert len(chunk_lengths) == len(segments)  # the random model says something in every chunk
    assert [round(s.end - s.start, 4) for s in segments] == [
        round(n / SR, 4) for n in chunk_lengths
    ]
    limits = OPTIONS.chunking
    assert all(
        limits.new_chunk_threshold_s * SR < n <= limits.strict_limit_s * SR for n in chunk_lengths
    )
    assert max(chunk_lengths) > 15 * SR  # several regions were merged
    # and each chunk is the file's own samples at its offsets, not just the right length
    assert len(recorder.waveforms) == len(expected_chunks)
    for chunk, waveform in zip(expected_chunks, recorder.waveforms, strict=True):
        expected = as_waveform(samples[chunk.start_sample : chunk.end_sample])
        assert np.array_equal(waveform, expected), f"wrong samples for {chunk}"
    assert len(recorder.batches[0]) == 1  # the first segment comes after one chunk
    assert all(len(b) <= OPTIONS.batch_size for b in recorder.batches)
    # progress never goes back, and never claims audio whose segment has not come out yet
    assert progress == sorted(progress)
    assert all(p <= s.end for p, s in zip(progress, segments[1:], strict=False))
    assert 0 < progress[-1] < transcription.duration_s


def test_short_speech_is_one_pass_over_the_whole_clip(
    pipeline: Pipeline, recorder: RecordingEngine, speech_wav_short: Path
) -> None:
    samples = wav_samples(speech_wav_short)  # its length is whatever this espeak-ng made
    segments = run(pipeline, speech_wav_short)
    assert recorder.batches == [[len(samples)]]
    [waveform] = recorder.waveforms
    assert np.array_equal(waveform, as_waveform(samples))
    assert len(segments) == 1
    assert segments[0].start == 0.0 and segments[0].end == pytest.approx(len(samples) / SR)
    assert_well_formed(segments, len(samples) / SR)


def test_every_format_decodes_and_transcribes(
    pipeline: Pipeline,
    recorder: RecordingEngine,
    audio_formats: dict[str, Path],
    speech_wav_short: Path,
) -> None:
    original = as_waveform(wav_samples(speech_wav_short))
    for name, path in audio_formats.items():
        recorder.batches.clear()
        recorder.waveforms.clear()
        segments = run(pipeline, path)
        assert len(recorder.batches) == 1, name
        [waveform] = recorder.waveforms
        assert len(waveform) / SR == pytest.approx(len(original) / SR, abs=0.15), name
        if name in ("wav", "flac"):  # lossless at 16 kHz mono: the very samples
            assert np.array_equal(waveform, original), name
        else:  # lossy or resampled: the same speech, loud where the original is loud
            agreement = envelope_agreement(waveform, original)
            assert agreement > 0.85, f"{name}: {agreement:.3f}"
        assert len(segments) == 1, name


@pytest.mark.parametrize("fixture", ["silence_wav", "noise_wav", "silence_long_wav"])
def test_speech_free_audio_gives_no_segments(
    pipeline: Pipeline, recorder: RecordingEngine, fixture: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(fixture)
    transcription = pipeline.transcribe(path, OPTIONS, threading.Event())
    assert list(transcription) == []
    assert recorder.batches == []
    assert transcription.duration_s > 4.0


@pytest.mark.parametrize("name", ["corrupt", "empty", "text", "video_no_audio", "wav_header_only"])
def test_bad_input_fails_before_the_stream_starts(
    pipeline: Pipeline, bad_inputs: dict[str, Path], name: str
) -> None:
    with pytest.raises(AudioDecodeError):
        pipeline.transcribe(bad_inputs[name], OPTIONS, threading.Event())


def test_missing_ffmpeg_is_a_tool_error(
    pipeline: Pipeline, speech_wav_short: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AudioToolMissingError):
        pipeline.transcribe(speech_wav_short, OPTIONS, threading.Event())


def test_too_long_by_probe_is_rejected_at_once(pipeline: Pipeline, speech_long: Path) -> None:
    with pytest.raises(AudioTooLongError):
        pipeline.transcribe(speech_long, TranscribeOptions(max_audio_s=30.0), threading.Event())


def test_too_long_without_known_duration_stops_while_decoding(
    pipeline: Pipeline, recorder: RecordingEngine, speech_unknown_duration: Path
) -> None:
    options = TranscribeOptions(max_audio_s=40.0, batch_size=2)
    transcription = pipeline.transcribe(speech_unknown_duration, options, threading.Event())
    segments: list[Segment] = []
    with pytest.raises(AudioTooLongError):
        segments.extend(transcription)
    assert all(s.end <= 40.0 for s in segments)
    assert transcription.decoder_pid is None


def test_cancel_mid_file_stops_kills_ffmpeg_and_frees_spool(
    pipeline: Pipeline, recorder: RecordingEngine, speech_sparse_twenty_minutes: Path
) -> None:
    cancel = threading.Event()
    transcription = pipeline.transcribe(speech_sparse_twenty_minutes, OPTIONS, cancel)
    segments = iter(transcription)
    first = next(segments)
    assert first.start < 60.0
    # the producer is at most two batches (four minutes here) ahead: ffmpeg is still decoding
    pid = transcription.decoder_pid
    assert pid in child_processes()
    spool_dir = transcription.spool_dir
    assert spool_dir.exists()
    cancel.set()
    batches_before = len(recorder.batches)
    with pytest.raises(TranscriptionCancelledError):
        next(segments)
    assert len(recorder.batches) == batches_before
    assert not Path(f"/proc/{pid}").exists() and not spool_dir.exists()


def test_close_mid_file_frees_everything(pipeline: Pipeline, speech_sparse_long: Path) -> None:
    transcription = pipeline.transcribe(speech_sparse_long, OPTIONS, threading.Event())
    next(iter(transcription))
    transcription.close()
    transcription.close()
    assert transcription.decoder_pid is None and not transcription.spool_dir.exists()


def test_close_from_another_thread_while_the_engine_runs(
    engine: TorchEngine, vad: SileroVad, spool_parent: Path, speech_sparse_twenty_minutes: Path
) -> None:
    gated = GatedEngine(engine)
    pipeline = Pipeline(gated, vad, temp_dir=spool_parent)
    transcription = pipeline.transcribe(speech_sparse_twenty_minutes, OPTIONS, threading.Event())
    outcome: list[BaseException | list[Segment]] = []

    def consume() -> None:
        try:
            outcome.append(list(transcription))
        except BaseException as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert gated.entered.wait(60)
    pid = transcription.decoder_pid
    assert pid is not None
    transcription.close()
    # ffmpeg is killed at once (a zombie until the iterating thread reaps it); the batch in
    # the engine finishes, then the run ends cancelled and cleans up in its own thread
    assert wait_until(lambda: process_state(pid) in ("Z", None))
    gated.release.set()
    consumer.join(60)
    assert not consumer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], TranscriptionCancelledError)
    assert gated.batches == [[gated.batches[0][0]]]
    assert transcription.decoder_pid is None and not transcription.spool_dir.exists()


def test_a_run_dropped_mid_file_leaves_nothing_behind(
    pipeline: Pipeline, speech_sparse_twenty_minutes: Path
) -> None:
    transcription = pipeline.transcribe(speech_sparse_twenty_minutes, OPTIONS, threading.Event())
    segments = iter(transcription)
    next(segments)
    spool_dir = transcription.spool_dir
    assert producer_threads() and spool_dir.exists()
    del transcription, segments
    gc.collect()
    assert producer_threads() == [] and not spool_dir.exists()


class FailingVad(SileroVad):
    """The real VAD whose streams fail on block 150, as a broken decoder or model would."""

    def stream(self, options: VadOptions) -> VadStream:
        return FailingStream(self._session, options)


class FailingStream(VadStream):
    fed_blocks = 0

    def feed(self, samples: Samples | Waveform) -> list[SpeechRegion]:
        self.fed_blocks += 1
        if self.fed_blocks == 150:
            raise RuntimeError("the VAD broke at block 150")
        return super().feed(samples)


def test_a_producer_error_reaches_the_caller_after_the_segments_before_it(
    recorder: RecordingEngine, spool_parent: Path, speech_sparse_long: Path
) -> None:
    pipeline = Pipeline(recorder, FailingVad.load(), temp_dir=spool_parent)
    transcription = pipeline.transcribe(speech_sparse_long, OPTIONS, threading.Event())
    segments: list[Segment] = []
    with pytest.raises(RuntimeError, match=r"^the VAD broke at block 150$"):
        segments.extend(transcription)
    # blocks are 1 s: the bursts at 0, 1 and 2 minutes were transcribed, nothing after 150 s
    assert [round(s.start / 60) for s in segments] == [0, 1, 2]
    assert transcription.decoder_pid is None and not transcription.spool_dir.exists()


def test_unused_transcription_closes_cleanly(pipeline: Pipeline, speech_long: Path) -> None:
    transcription = pipeline.transcribe(speech_long, OPTIONS, threading.Event())
    assert transcription.decoder_pid in child_processes()
    transcription.close()


def test_spool_keeps_only_recent_audio_on_disk(
    pipeline: Pipeline, speech_sparse_long: Path
) -> None:
    transcription = pipeline.transcribe(speech_sparse_long, OPTIONS, threading.Event())
    most_files = 0
    segments: list[Segment] = []
    for segment in transcription:
        segments.append(segment)
        most_files = max(most_files, len(list(transcription.spool_dir.iterdir())))
    # 6 minutes is 12 spool files of 30 s; the pending chunk reaches back at most ~22 s past
    # the decode position, so only the files it touches (and the one being written) remain
    assert most_files <= 4
    assert len(segments) >= 6
    assert_well_formed(segments, transcription.duration_s)


def test_twenty_minute_file_streams_with_bounded_disk(
    pipeline: Pipeline, recorder: RecordingEngine, speech_sparse_twenty_minutes: Path
) -> None:
    transcription = pipeline.transcribe(speech_sparse_twenty_minutes, OPTIONS, threading.Event())
    assert transcription.duration_s > 19 * 60
    segments: list[Segment] = []
    most_files = 0
    for segment in transcription:
        segments.append(segment)
        most_files = max(most_files, len(list(transcription.spool_dir.iterdir())))
    assert_well_formed(segments, transcription.duration_s)
    # one burst of speech per pattern period (~59 s), 50 s of silence between: every burst is its
    # own chunk, so segments start one period apart
    assert len(segments) == 20
    starts = [segment.start for segment in segments]
    period_s = transcription.duration_s / 20
    assert all(abs((b - a) - period_s) < 0.3 for a, b in itertools.pairwise(starts))
    assert most_files <= 4  # 40 spool files of 30 s pass through; only the recent ones stay


def test_e2e_family_with_a_sentencepiece_tokenizer_runs_the_long_form_path(
    tiny_checkpoints: dict[str, Path], vad: SileroVad, spool_parent: Path, speech_long: Path
) -> None:
    # CTC: a random RNN-T emits up to 10 tokens a frame and is slow on 75 s; the pipeline is the
    # same for both heads, the tokenizer (SentencePiece, punctuation) is what differs here
    checkpoint = tiny_checkpoints["v3_e2e_ctc"]
    engine = TorchEngine.from_files(
        checkpoint,
        tokenizer_path_for(checkpoint),
        model_id="v3_e2e_ctc",
        device="cpu",
        num_threads=THREADS,
    )
    pipeline = Pipeline(engine, vad, temp_dir=spool_parent)
    samples = wav_samples(speech_long)
    segments = run(pipeline, speech_long)
    assert_well_formed(segments, len(samples) / SR)
    expected = reference_chunks(samples, OPTIONS)
    assert [(s.start, s.end) for s in segments] == [(c.start_s, c.end_s) for c in expected]
    assert all(s.words for s in segments)


_THREADS_PROBE = """
import sys, threading, torch
from pathlib import Path
from gigaam_api.engines.pytorch import TorchEngine
from gigaam_api.pipeline.transcribe import Pipeline
from gigaam_api.pipeline.vad import SileroVad
from gigaam_api.types import TranscribeOptions
engine = TorchEngine.from_files(
    Path(sys.argv[1]), None, model_id="v3_ctc", device="cpu", num_threads=int(sys.argv[3])
)
after_engine = torch.get_num_threads()
pipeline = Pipeline(engine, SileroVad.load(), temp_dir=Path(sys.argv[4]))
after_vad = torch.get_num_threads()
segments = list(pipeline.transcribe(Path(sys.argv[2]), TranscribeOptions(), threading.Event()))
print(after_engine, after_vad, torch.get_num_threads(), len(segments))
"""


def test_num_threads_survives_vad_load_and_a_run(
    engine: TorchEngine, tiny_v3_ctc_checkpoint: Path, speech_long: Path, spool_parent: Path
) -> None:
    # a fresh interpreter: neither loading the VAD nor a run (VAD on its own thread) may change
    # the engine's torch thread count
    arguments = [str(tiny_v3_ctc_checkpoint), str(speech_long), str(THREADS), str(spool_parent)]
    done = subprocess.run(
        [sys.executable, "-c", _THREADS_PROBE, *arguments],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    after_engine, after_vad, after_run, segments = map(int, done.stdout.split())
    assert (after_engine, after_vad, after_run) == (THREADS, THREADS, THREADS)
    assert segments >= 3
    assert torch.get_num_threads() == THREADS  # and here, after the tests above ran


_NO_TORCH_PROBE = """
import sys, threading
from pathlib import Path
from gigaam_api.pipeline.transcribe import Pipeline
from gigaam_api.pipeline.vad import SileroVad
from gigaam_api.types import ChunkResult, TranscribeOptions

class LengthEngine:  # stands in for the ONNX engine: numpy in, text out, no torch
    model_id = "stub"
    device = "cpu"
    def transcribe_batch(self, waveforms, *, word_timestamps=True):
        return [ChunkResult(str(len(w))) for w in waveforms]

pipeline = Pipeline(LengthEngine(), SileroVad.load(), temp_dir=Path(sys.argv[2]))
run = pipeline.transcribe(Path(sys.argv[1]), TranscribeOptions(), threading.Event())
segments = list(run)
print(len(segments), "torch" in sys.modules, "silero_vad" in sys.modules)
"""


def test_the_pipeline_never_imports_torch(speech_long: Path, spool_parent: Path) -> None:
    # with an engine that needs no torch (the ONNX one), a whole run loads no torch: the VAD
    # reads silero's model file without importing the silero_vad package
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_PROBE, str(speech_long), str(spool_parent)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    segments, torch_loaded, silero_loaded = done.stdout.split()
    assert int(segments) >= 3 and (torch_loaded, silero_loaded) == ("False", "False")
