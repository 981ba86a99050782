"""Path -> Segments: ffmpeg decode -> streaming VAD -> chunk planner -> batches -> engine, lazily.

Two threads per run: a producer (producer.py: decode, spool, VAD, planning) works ahead and
hands ready batches through a bounded BatchQueue to the thread iterating the run, which runs
them through the engine and yields absolute Segments. So decoding and VAD overlap inference,
memory and spool disk stay flat, and the first batch holds one chunk for an early first segment.
Depends on engines.base only, never on a concrete engine.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gigaam_api.engines.base import Engine, Waveform
from gigaam_api.errors import TranscriptionCancelledError
from gigaam_api.pipeline.audio import AudioDecoder, Samples, check_probe, probe_audio
from gigaam_api.pipeline.batching import BatchPlanner
from gigaam_api.pipeline.handoff import BatchQueue, ReadyBatch
from gigaam_api.pipeline.producer import BatchProducer
from gigaam_api.pipeline.spool import SampleSpool
from gigaam_api.pipeline.vad import SileroVad
from gigaam_api.types import SAMPLE_RATE, ChunkResult, Segment, TranscribeOptions

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
        max_ready_batches: how many batches the producer thread may prepare ahead of the
            engine (each holds its samples in RAM: up to batch_size x 30 s of int16).
    """

    def __init__(
        self,
        engine: Engine,
        vad: SileroVad,
        *,
        temp_dir: Path | None = None,
        first_batch_size: int = 1,
        max_batch_samples: int = 0,
        max_ready_batches: int = 2,
    ) -> None:
        self._engine = engine
        self._vad = vad
        self._temp_dir = temp_dir
        self._first_batch_size = first_batch_size
        self._max_batch_samples = max_batch_samples
        self._max_ready_batches = max_ready_batches

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
            spool = SampleSpool(self._temp_dir)
        except BaseException:
            blocks.close()
            decoder.close()
            raise
        queue = BatchQueue(self._max_ready_batches)
        producer = BatchProducer(
            decoder=decoder,
            blocks=itertools.chain([first_block], blocks),
            vad_stream=self._vad.stream(options.vad),
            options=options,
            cancel=cancel,
            batcher=BatchPlanner(
                options.batch_size,
                max_samples=self._max_batch_samples,
                first_batch_size=self._first_batch_size,
            ),
            spool=spool,
            queue=queue,
        )
        return PipelineRun(
            engine=self._engine,
            producer=producer,
            queue=queue,
            decoder=decoder,
            spool_dir=spool.directory,
            options=options,
            cancel=cancel,
            probed_duration_s=probe.duration_s,
        )


@dataclass(frozen=True)
class RunTimes:
    """Where a run's time went, in seconds (producer and consumer threads overlap)."""

    engine_s: float
    """Consumer: inside engine.transcribe_batch."""
    wait_s: float
    """Consumer: waiting for the producer's next batch (the pipeline's cost to the engine)."""
    decode_s: float
    """Producer: waiting for ffmpeg's blocks."""
    vad_s: float
    """Producer: scoring windows and finding regions."""
    spool_s: float
    """Producer: writing and reading back the spool."""
    producer_cpu_s: float
    """Producer: CPU seconds of the thread, once it has ended (0 before)."""


class PipelineRun:
    """One transcription in progress (the Transcription protocol); iterate once for Segments.

    The producer thread starts with the iteration and is joined when it ends, on close() and
    when the run is garbage-collected, so no thread, ffmpeg process or spool file outlives it.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        producer: BatchProducer,
        queue: BatchQueue,
        decoder: AudioDecoder,
        spool_dir: Path,
        options: TranscribeOptions,
        cancel: threading.Event,
        probed_duration_s: float | None,
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._queue = queue
        self._decoder = decoder
        self._spool_dir = spool_dir
        self._options = options
        self._cancel = cancel
        self._closed = threading.Event()
        self._probed_duration_s = probed_duration_s
        self._next_id = 0
        self._engine_s = 0.0
        self._wait_s = 0.0
        self._segments: Generator[Segment, None, None] | None = None
        # A run that is dropped without close() must still not leave anything behind; the
        # producer holds no reference to the run, so the run can be collected.
        self._finalizer = weakref.finalize(self, producer.close)

    @property
    def duration_s(self) -> float:
        """Probed duration until the audio has been decoded to its end, then the decoded one."""
        decoded = self._producer.decoded_samples
        if decoded is not None:
            return decoded / SAMPLE_RATE
        if self._probed_duration_s is not None:
            return self._probed_duration_s
        return self._decoder.samples_decoded / SAMPLE_RATE

    @property
    def processed_s(self) -> float:
        """Seconds from the start whose segments have all been yielded (see Transcription)."""
        return self._queue.settled_sample / SAMPLE_RATE

    @property
    def times(self) -> RunTimes:
        """Where the time went so far (final once iteration has ended)."""
        producer = self._producer
        return RunTimes(
            engine_s=self._engine_s,
            wait_s=self._wait_s,
            decode_s=producer.decode_s,
            vad_s=producer.vad_s,
            spool_s=producer.spool_s,
            producer_cpu_s=producer.cpu_s,
        )

    @property
    def decoder_pid(self) -> int | None:
        """The ffmpeg process id while it runs (for diagnostics and leak tests)."""
        return self._decoder.pid

    @property
    def spool_dir(self) -> Path:
        """The private directory holding decoded samples (removed when the run ends)."""
        return self._spool_dir

    def __iter__(self) -> Iterator[Segment]:
        if self._segments is not None:
            raise RuntimeError("a PipelineRun can be iterated only once")
        self._segments = self._run()
        return self._segments

    def close(self) -> None:
        """Stop the run: kill ffmpeg, end the producer, delete the spool; safe from any state
        and any thread, idempotent."""
        self._closed.set()
        self._producer.stop()
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
            self._check_cancel()
            self._producer.start()
            while True:
                started = time.perf_counter()
                ready = self._queue.get()
                self._wait_s += time.perf_counter() - started
                if ready is None:
                    break
                self._check_cancel()
                yield from self._run_batch(ready)
                self._queue.task_done()
            times = self.times
            logger.debug(
                "Run done: %.1f s of audio; engine %.2f s, waited %.2f s; producer: decode "
                "%.2f s, VAD %.2f s, spool %.2f s, %.2f CPU s",
                self.duration_s,
                *(times.engine_s, times.wait_s, times.decode_s, times.vad_s, times.spool_s),
                times.producer_cpu_s,
            )
        finally:
            self._finalizer()

    def _run_batch(self, ready: ReadyBatch) -> Iterator[Segment]:
        waveforms = [_to_waveform(samples) for samples in ready.samples]
        started = time.perf_counter()
        results = self._engine.transcribe_batch(
            waveforms, word_timestamps=self._options.word_timestamps
        )
        self._engine_s += time.perf_counter() - started
        del waveforms
        for chunk, result in zip(ready.chunks, results, strict=True):
            segment = self._segment(chunk.start_s, chunk.end_s, result)
            if segment is not None:
                yield segment

    def _segment(self, start_s: float, end_s: float, result: ChunkResult) -> Segment | None:
        """An absolute-time Segment, or None for a chunk the model heard no words in."""
        text = result.text.strip()
        if not text:
            return None
        words = tuple(
            replace(
                word, start=min(start_s + word.start, end_s), end=min(start_s + word.end, end_s)
            )
            for word in result.words
        )
        segment = Segment(self._next_id, start_s, end_s, text, words, result.avg_logprob)
        self._next_id += 1
        return segment


def _to_waveform(samples: Samples) -> Waveform:
    return samples.astype(np.float32) / np.float32(32768.0)
