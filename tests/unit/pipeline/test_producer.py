"""BatchProducer on a real file: it stays a bounded distance ahead of a consumer that does not
take, and close() ends its thread, ffmpeg and the spool."""

from __future__ import annotations

import threading
from pathlib import Path

from gigaam_api.pipeline.audio import AudioDecoder
from gigaam_api.pipeline.batching import BatchPlanner
from gigaam_api.pipeline.handoff import BatchQueue, ReadyBatch
from gigaam_api.pipeline.producer import BatchProducer
from gigaam_api.pipeline.spool import SampleSpool
from gigaam_api.pipeline.vad import SileroVad
from gigaam_api.types import SAMPLE_RATE, TranscribeOptions
from tests.fixtures.audio import child_processes


class WatchedQueue(BatchQueue):
    """Notes how far the decoder had got each time the producer offered a batch."""

    def __init__(self, max_ready: int, decoder: AudioDecoder) -> None:
        super().__init__(max_ready)
        self._decoder = decoder
        self.decoded_at_put: list[int] = []
        self.blocked = threading.Event()

    def put(self, batch: ReadyBatch) -> bool:
        self.decoded_at_put.append(self._decoder.samples_decoded)
        if len(self.decoded_at_put) > 1:  # max_ready is 1 and nobody takes: this put waits
            self.blocked.set()
        return super().put(batch)


def test_producer_stops_one_batch_ahead_until_the_consumer_takes(
    speech_sparse_twenty_minutes: Path, tmp_path: Path
) -> None:
    options = TranscribeOptions(batch_size=1)
    decoder = AudioDecoder(speech_sparse_twenty_minutes)
    decoder.start()
    spool = SampleSpool(tmp_path)
    queue = WatchedQueue(1, decoder)
    producer = BatchProducer(
        decoder=decoder,
        blocks=decoder.blocks(),
        vad_stream=SileroVad.load().stream(options.vad),
        options=options,
        cancel=threading.Event(),
        batcher=BatchPlanner(1),
        spool=spool,
        queue=queue,
    )
    producer.start()
    try:
        assert queue.blocked.wait(60)
        # one burst of speech a minute, one chunk per batch: the second batch is the burst at
        # 1 min, decided ~22 s after it starts; the producer then waits instead of decoding on
        # (one second is only how long a broken, unbounded producer gets to show itself)
        threading.Event().wait(1.0)
        assert len(queue.decoded_at_put) == 2
        assert queue.decoded_at_put[1] < 100 * SAMPLE_RATE
        assert decoder.samples_decoded == queue.decoded_at_put[1]
        assert decoder.pid in child_processes()
    finally:
        producer.close()
    assert decoder.pid is None and child_processes() == []
    assert not spool.directory.exists()
    assert producer.decoded_samples is None  # it never reached the end of the 20 minutes
