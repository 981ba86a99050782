"""The whole pipeline on real files: real ffmpeg, real Silero VAD, the real TorchEngine (small
official-format checkpoint). Checks order, bounds, chunk limits, formats, failures, cancellation
and cleanup (no ffmpeg children, no spool files)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import wave
from collections.abc import Iterator, Sequence
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
from gigaam_api.pipeline.chunking import Chunk, plan_chunks
from gigaam_api.pipeline.transcribe import Pipeline
from gigaam_api.pipeline.vad import SileroVad
from gigaam_api.types import ChunkResult, Segment, TranscribeOptions
from tests.fixtures.audio import child_processes
from tests.fixtures.checkpoints import tokenizer_path_for

SR = 16000
THREADS = 2
OPTIONS = TranscribeOptions(batch_size=2)


class RecordingEngine:
    """The real engine, noting each batch's waveform lengths (to check chunking from outside)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.batches: list[list[int]] = []

    @property
    def model_id(self) -> str:
        return self._engine.model_id

    @property
    def device(self) -> str:
        return self._engine.device

    @property
    def engine(self) -> str:
        return self._engine.engine

    @property
    def precision(self) -> str:
        return self._engine.precision

    def transcribe_batch(
        self, waveforms: Sequence[Waveform], *, word_timestamps: bool = True
    ) -> list[ChunkResult]:
        self.batches.append([len(w) for w in waveforms])
        return self._engine.transcribe_batch(waveforms, word_timestamps=word_timestamps)


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


@pytest.fixture
def pipeline(recorder: RecordingEngine, vad: SileroVad, spool_parent: Path) -> Pipeline:
    return Pipeline(recorder, vad, temp_dir=spool_parent)


def run(pipeline: Pipeline, path: Path, options: TranscribeOptions = OPTIONS) -> list[Segment]:
    transcription = pipeline.transcribe(path, options, threading.Event())
    try:
        return list(transcription)
    finally:
        transcription.close()


def read_wav(path: Path) -> Samples:
    """All samples of a 16 kHz mono s16 wav, read without ffmpeg (an independent reference)."""
    with wave.open(str(path)) as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (SR, 1, 2)
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)


def reference_chunks(vad: SileroVad, samples: Samples, options: TranscribeOptions) -> list[Chunk]:
    """The chunks of the whole-list planner over the one-shot VAD regions of the whole file."""
    regions = vad.speech_regions(samples, options.vad)
    spans = [(region.start_sample, region.end_sample) for region in regions]
    return plan_chunks(spans, options.chunking, len(samples))


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
    pipeline: Pipeline, recorder: RecordingEngine, vad: SileroVad, speech_long: Path
) -> None:
    samples = read_wav(speech_long)
    expected_chunks = reference_chunks(vad, samples, OPTIONS)
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
    assert len(recorder.batches[0]) == 1  # the first segment comes after one chunk
    assert all(len(b) <= OPTIONS.batch_size for b in recorder.batches)
    # progress never goes back, and never claims audio whose segment has not come out yet
    assert progress == sorted(progress)
    assert all(p <= s.end for p, s in zip(progress, segments[1:], strict=False))
    assert 0 < progress[-1] < transcription.duration_s


def test_short_speech_is_one_pass_over_the_whole_clip(
    pipeline: Pipeline, recorder: RecordingEngine, speech_wav_short: Path
) -> None:
    segments = run(pipeline, speech_wav_short)
    assert recorder.batches == [[119229]]
    assert len(segments) == 1
    assert segments[0].start == 0.0 and segments[0].end == pytest.approx(119229 / SR)
    assert_well_formed(segments, 119229 / SR)


def test_every_format_decodes_and_transcribes(
    pipeline: Pipeline, recorder: RecordingEngine, audio_formats: dict[str, Path]
) -> None:
    for name, path in audio_formats.items():
        recorder.batches.clear()
        segments = run(pipeline, path)
        assert len(recorder.batches) == 1, name
        assert recorder.batches[0][0] / SR == pytest.approx(7.45, abs=0.15), name
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
    pipeline: Pipeline, recorder: RecordingEngine, speech_sparse_long: Path
) -> None:
    cancel = threading.Event()
    transcription = pipeline.transcribe(speech_sparse_long, OPTIONS, cancel)
    segments = iter(transcription)
    first = next(segments)
    assert first.start < 60.0
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
    samples = read_wav(speech_long)
    segments = run(pipeline, speech_long)
    assert_well_formed(segments, len(samples) / SR)
    expected = reference_chunks(vad, samples, OPTIONS)
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
    # a fresh interpreter: importing silero_vad the first time sets torch to one thread
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
