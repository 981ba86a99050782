"""A run's producer thread: ffmpeg blocks -> spool + streaming VAD -> chunk planner -> batches.

It works ahead of the engine, so decoding and VAD (one core) overlap inference instead of
stopping it: each ready batch goes, with its samples read back from the spool, into a bounded
BatchQueue that the consumer drains. Spool segments wholly before the earliest sample any pending
chunk, planned chunk or unfinished VAD region may still need are deleted as it goes, so even one
very long speech region costs disk, not RAM. Audio up to short_form_max_s becomes one batch of
the whole clip, or nothing if the VAD hears no speech. Knows nothing of the engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

from gigaam_api.errors import TranscriptionCancelledError
from gigaam_api.pipeline.audio import AudioDecoder, Samples
from gigaam_api.pipeline.batching import Batch, BatchPlanner
from gigaam_api.pipeline.chunking import Chunk, ChunkPlanner
from gigaam_api.pipeline.handoff import BatchQueue, ReadyBatch
from gigaam_api.pipeline.spool import SampleSpool
from gigaam_api.pipeline.vad import SpeechRegion, VadStream
from gigaam_api.types import SAMPLE_RATE, TranscribeOptions

THREAD_NAME = "gigaam-pipeline-producer"


class BatchProducer:
    """Turns a decoding file into ready batches on its own thread; `close()` ends everything.

    Args:
        decoder: the started ffmpeg process (killed by stop/close).
        blocks: its int16 blocks (the first may have been read already).
        vad_stream: a fresh VAD stream for this run.
        options: chunking, VAD and short-form settings of the run.
        cancel: set by the caller to stop; the producer then ends with
            TranscriptionCancelledError.
        batcher: the batch planner (sizes, first batch of one).
        spool: where decoded samples wait for their chunk (closed by close()).
        queue: where ready batches go.
    """

    def __init__(
        self,
        *,
        decoder: AudioDecoder,
        blocks: Iterator[Samples],
        vad_stream: VadStream,
        options: TranscribeOptions,
        cancel: threading.Event,
        batcher: BatchPlanner,
        spool: SampleSpool,
        queue: BatchQueue,
    ) -> None:
        self._decoder = decoder
        self._blocks = blocks
        self._vad = vad_stream
        self._options = options
        self._cancel = cancel
        self._planner = ChunkPlanner(options.chunking)
        self._batcher = batcher
        self._spool = spool
        self._queue = queue
        self._thread: threading.Thread | None = None
        self.decoded_samples: int | None = None
        """The audio's length, once decoded to its end."""
        self.decode_s = 0.0
        """Seconds spent waiting for ffmpeg's next block."""
        self.vad_s = 0.0
        """Seconds spent in the VAD."""
        self.spool_s = 0.0
        """Seconds spent writing and reading the spool."""
        self.cpu_s = 0.0
        """CPU seconds the thread used (ffmpeg's own are not in it)."""

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is not None:
            raise RuntimeError("BatchProducer.start() twice")
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end soon (from any thread): drops queued batches, kills ffmpeg."""
        self._queue.stop()
        self._decoder.kill()

    def close(self) -> None:
        """Stop, wait for the thread, reap ffmpeg and delete the spool; idempotent."""
        self.stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._decoder.close()
        self._spool.close()

    def _run(self) -> None:
        error: BaseException | None = None
        started = time.thread_time()
        try:
            self._produce()
        except BaseException as exc:  # handed to the consumer, which raises it
            error = exc
        finally:
            self.cpu_s = time.thread_time() - started
            self._queue.finish(error)

    def _produce(self) -> None:
        short_form_samples = int(self._options.short_form_max_s * SAMPLE_RATE)
        long_form = False
        heard_speech = False
        undecided: list[Chunk] = []  # chunks planned before the audio is known to be long
        for block in self._timed_blocks():
            if self._queue.stopped:
                return
            if self._cancel.is_set():
                raise TranscriptionCancelledError("The transcription was cancelled.")
            started = time.perf_counter()
            self._spool.append(block)
            self.spool_s += time.perf_counter() - started
            regions = self._score(block)
            heard_speech = heard_speech or bool(regions)
            chunks = self._plan(regions) + self._planner.advance(self._vad.pending_from_sample)
            if not long_form and self._spool.total_samples > short_form_samples:
                long_form = True
                chunks, undecided = undecided + chunks, []
            if long_form:
                if not self._put_chunks(chunks):
                    return
                needed_from = self._needed_from_sample()
                self._spool.release_before(needed_from)
                self._queue.settle(needed_from)
            else:
                undecided += chunks
        total_samples = self._spool.total_samples
        self.decoded_samples = total_samples
        started = time.perf_counter()
        last_regions = self._vad.finish()
        self.vad_s += time.perf_counter() - started
        heard_speech = heard_speech or bool(last_regions)
        if not long_form:
            # short audio is one pass over the whole clip, as upstream does (see D-013)
            if heard_speech and not self._put((Chunk(0, total_samples),)):
                return
        else:
            if not self._put_chunks(self._plan(last_regions) + self._planner.finish()):
                return
            for batch in self._batcher.finish():
                if not self._put(batch):
                    return
        self._queue.settle(total_samples)

    def _timed_blocks(self) -> Iterator[Samples]:
        while True:
            started = time.perf_counter()
            block = next(self._blocks, None)
            self.decode_s += time.perf_counter() - started
            if block is None:
                return
            yield block

    def _score(self, block: Samples) -> list[SpeechRegion]:
        started = time.perf_counter()
        regions = self._vad.feed(block)
        self.vad_s += time.perf_counter() - started
        return regions

    def _plan(self, regions: Sequence[SpeechRegion]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for region in regions:
            chunks += self._planner.feed(region.start_sample, region.end_sample)
        return chunks

    def _put_chunks(self, chunks: Sequence[Chunk]) -> bool:
        for chunk in chunks:
            for batch in self._batcher.add(chunk):
                if not self._put(batch):
                    return False
        return True

    def _put(self, batch: Batch) -> bool:
        started = time.perf_counter()
        samples = tuple(self._spool.read(c.start_sample, c.end_sample) for c in batch)
        self.spool_s += time.perf_counter() - started
        return self._queue.put(ReadyBatch(batch, samples))

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
