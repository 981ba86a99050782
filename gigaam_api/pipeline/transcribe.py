"""Path -> Segments: ffmpeg decode -> streaming VAD -> chunk planner -> batches -> engine, lazily.

Memory stays flat: decoded int16 blocks go to the VAD and to an on-disk SampleSpool at once,
and a chunk's samples are read back only when its batch runs; spool segments wholly before the
earliest sample any pending chunk, planned chunk or unfinished VAD region may still need are
deleted, so even one very long speech region costs disk, not RAM. Each chunk runs as soon as the
planner decides it (the first batch holds one chunk), so the first segment does not wait for the
rest of the file. Audio up to short_form_max_s is one pass over the whole clip, or nothing if the
VAD hears no speech. Depends on engines.base only, never on a concrete engine.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

import numpy as np

from gigaam_api.engines.base import Engine, Waveform
from gigaam_api.errors import TranscriptionCancelledError
from gigaam_api.pipeline.audio import AudioDecoder, Samples, check_probe, probe_audio
from gigaam_api.pipeline.batching import Batch, BatchPlanner
from gigaam_api.pipeline.chunking import Chunk, ChunkPlanner
from gigaam_api.pipeline.spool import SampleSpool
from gigaam_api.pipeline.vad import SileroVad, SpeechRegion, VadStream
from gigaam_api.types import SAMPLE_RATE, ChunkResult, Segment, TranscribeOptions, Word

logger = logging.getLogger(__name__)


class Pipeline:
    """The Transcriber over any Engine: probes eagerly, transcribes lazily.

    Args:
        engine: the loaded model.
        vad: the loaded Silero VAD (`SileroVad.load()`).
        temp_dir: where spool directories are made (None = the system temp dir).
        first_batch_size: chunks in the first batch of a long file (smaller = earlier first
            segment); later batches hold options.batch_size.
        max_batch_samples: cap on batch rows x longest chunk (0 = count only).
    """

    def __init__(
        self,
        engine: Engine,
        vad: SileroVad,
        *,
        temp_dir: Path | None = None,
        first_batch_size: int = 1,
        max_batch_samples: int = 0,
    ) -> None:
        self._engine = engine
        self._vad = vad
        self._temp_dir = temp_dir
        self._first_batch_size = first_batch_size
        self._max_batch_samples = max_batch_samples

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

    def transcribe(
        self, path: Path, options: TranscribeOptions, cancel: threading.Event
    ) -> PipelineRun:
        """Probe and start decoding `path` now; return the run that yields Segments when iterated.

        Raises:
            AudioDecodeError: corrupt, empty, not audio, no audio track, or no samples at all.
            AudioTooLongError: the probed (or first decoded) duration exceeds max_audio_s.
            AudioToolMissingError: ffmpeg or ffprobe is missing.
        """
        probe = probe_audio(path)
        check_probe(probe, options.max_audio_s)
        decoder = AudioDecoder(path, max_audio_s=options.max_audio_s)
        decoder.start()
        blocks = decoder.blocks()
        try:
            first_block = next(blocks)
        except BaseException:
            blocks.close()
            decoder.close()
            raise
        return PipelineRun(
            engine=self._engine,
            vad_stream=self._vad.stream(options.vad),
            decoder=decoder,
            blocks=itertools.chain([first_block], blocks),
            options=options,
            cancel=cancel,
            probed_duration_s=probe.duration_s,
            batcher=BatchPlanner(
                options.batch_size,
                max_samples=self._max_batch_samples,
                first_batch_size=self._first_batch_size,
            ),
            spool=SampleSpool(self._temp_dir),
        )


class PipelineRun:
    """One transcription in progress (the Transcription protocol); iterate once for Segments."""

    def __init__(
        self,
        *,
        engine: Engine,
        vad_stream: VadStream,
        decoder: AudioDecoder,
        blocks: Iterator[Samples],
        options: TranscribeOptions,
        cancel: threading.Event,
        probed_duration_s: float | None,
        batcher: BatchPlanner,
        spool: SampleSpool,
    ) -> None:
        self._engine = engine
        self._vad = vad_stream
        self._decoder = decoder
        self._blocks = blocks
        self._options = options
        self._cancel = cancel
        self._closed = threading.Event()
        self._probed_duration_s = probed_duration_s
        self._decoded_duration_s: float | None = None
        self._planner = ChunkPlanner(options.chunking)
        self._batcher = batcher
        self._spool = spool
        self._next_id = 0
        self._processed_samples = 0
        self._segments: Generator[Segment, None, None] | None = None
        # A run that is dropped without close() must still not leave ffmpeg or files behind.
        self._finalizer = weakref.finalize(self, _release, decoder, spool)

    @property
    def duration_s(self) -> float:
        """Probed duration until the audio has been decoded to its end, then the decoded one."""
        if self._decoded_duration_s is not None:
            return self._decoded_duration_s
        if self._probed_duration_s is not None:
            return self._probed_duration_s
        return self._decoder.samples_decoded / SAMPLE_RATE

    @property
    def processed_s(self) -> float:
        """Seconds from the start whose segments have all been yielded (see Transcription)."""
        return self._processed_samples / SAMPLE_RATE

    @property
    def decoder_pid(self) -> int | None:
        """The ffmpeg process id while it runs (for diagnostics and leak tests)."""
        return self._decoder.pid

    @property
    def spool_dir(self) -> Path:
        """The private directory holding decoded samples (removed when the run ends)."""
        return self._spool.directory

    def __iter__(self) -> Iterator[Segment]:
        if self._segments is not None:
            raise RuntimeError("a PipelineRun can be iterated only once")
        self._segments = self._run()
        return self._segments

    def close(self) -> None:
        """Stop the run: kill ffmpeg, delete the spool; safe from any state and any thread,
        idempotent."""
        self._closed.set()
        if self._segments is not None:
            try:
                self._segments.close()
            except ValueError:  # running in another thread: it sees _closed and cleans up
                self._decoder.kill()
                return
        self._finalizer()

    def _check_cancel(self) -> None:
        if self._cancel.is_set() or self._closed.is_set():
            raise TranscriptionCancelledError("The transcription was cancelled.")

    def _run(self) -> Generator[Segment, None, None]:
        try:
            yield from self._transcribe()
        finally:
            self._finalizer()

    def _transcribe(self) -> Iterator[Segment]:
        short_form_samples = int(self._options.short_form_max_s * SAMPLE_RATE)
        long_form = False
        heard_speech = False
        undecided: list[Chunk] = []  # chunks planned before the audio is known to be long
        for block in self._blocks:
            self._check_cancel()
            self._spool.append(block)
            regions = self._vad.feed(block)
            heard_speech = heard_speech or bool(regions)
            chunks = self._plan(regions) + self._planner.advance(self._vad.pending_from_sample)
            if not long_form and self._spool.total_samples > short_form_samples:
                long_form = True
                chunks, undecided = undecided + chunks, []
            if long_form:
                yield from self._run_chunks(chunks)
                needed_from = self._needed_from_sample()
                self._spool.release_before(needed_from)
                self._processed_samples = max(self._processed_samples, needed_from)
            else:
                undecided += chunks
        self._check_cancel()
        total_samples = self._spool.total_samples
        self._decoded_duration_s = total_samples / SAMPLE_RATE
        last_regions = self._vad.finish()
        heard_speech = heard_speech or bool(last_regions)
        if not long_form:
            if heard_speech:
                yield from self._run_whole_clip(total_samples)
        else:
            yield from self._run_chunks(self._plan(last_regions) + self._planner.finish())
            for batch in self._batcher.finish():
                yield from self._run_batch(batch)
        self._processed_samples = total_samples

    def _plan(self, regions: Sequence[SpeechRegion]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for region in regions:
            chunks += self._planner.feed(region.start_sample, region.end_sample)
        return chunks

    def _needed_from_sample(self) -> int:
        """The earliest sample a queued chunk, the pending chunk or a future region may need."""
        candidates = [self._vad.pending_from_sample]
        pending_start = self._planner.pending_start_sample
        if pending_start is not None:
            candidates.append(pending_start)
        queued = self._batcher.pending
        if queued:
            candidates.append(queued[0].start_sample)
        return min(candidates)

    def _run_chunks(self, chunks: Sequence[Chunk]) -> Iterator[Segment]:
        for chunk in chunks:
            for batch in self._batcher.add(chunk):
                yield from self._run_batch(batch)

    def _run_batch(self, batch: Batch) -> Iterator[Segment]:
        self._check_cancel()
        waveforms = [_to_waveform(self._spool.read(c.start_sample, c.end_sample)) for c in batch]
        results = self._engine.transcribe_batch(
            waveforms, word_timestamps=self._options.word_timestamps
        )
        del waveforms
        for chunk, result in zip(batch, results, strict=True):
            segment = self._segment(chunk.start_s, chunk.end_s, result)
            if segment is not None:
                yield segment

    def _run_whole_clip(self, total_samples: int) -> Iterator[Segment]:
        self._check_cancel()
        waveform = _to_waveform(self._spool.read(0, total_samples))
        (result,) = self._engine.transcribe_batch(
            [waveform], word_timestamps=self._options.word_timestamps
        )
        segment = self._segment(0.0, total_samples / SAMPLE_RATE, result)
        if segment is not None:
            yield segment

    def _segment(self, start_s: float, end_s: float, result: ChunkResult) -> Segment | None:
        """An absolute-time Segment, or None for a chunk the model heard no words in."""
        text = result.text.strip()
        if not text:
            return None
        words = tuple(
            Word(word.text, min(start_s + word.start, end_s), min(start_s + word.end, end_s))
            for word in result.words
        )
        segment = Segment(self._next_id, start_s, end_s, text, words, result.avg_logprob)
        self._next_id += 1
        return segment


def _to_waveform(samples: Samples) -> Waveform:
    return samples.astype(np.float32) / np.float32(32768.0)


def _release(decoder: AudioDecoder, spool: SampleSpool) -> None:
    decoder.close()
    spool.close()
