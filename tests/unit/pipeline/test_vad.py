"""The streaming VAD against silero's own get_speech_timestamps on real espeak-ng speech."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from gigaam_api.pipeline.vad import SileroVad, SpeechRegion
from gigaam_api.types import VadOptions


def read_wav(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == 16000 and wav.getnchannels() == 1
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad.load()


@pytest.fixture(scope="module")
def mixed_audio(
    speech_long: Path, speech_wav_short: Path, noise_wav: Path
) -> npt.NDArray[np.int16]:
    """Speech, noise and silence; odd total length so the last window is a padded one."""
    return np.concatenate(
        [read_wav(speech_wav_short), read_wav(noise_wav), read_wav(speech_long)[: 40 * 16000 + 77]]
    )


def reference(
    vad: SileroVad, audio: npt.NDArray[np.int16], options: VadOptions
) -> list[SpeechRegion]:
    from silero_vad import get_speech_timestamps

    found = get_speech_timestamps(
        torch.from_numpy(audio.astype(np.float32) / np.float32(32768.0)),
        vad.model,
        threshold=options.threshold,
        min_speech_duration_ms=options.min_speech_duration_ms,
        min_silence_duration_ms=options.min_silence_duration_ms,
        speech_pad_ms=options.speech_pad_ms,
    )
    return [SpeechRegion(int(r["start"]), int(r["end"])) for r in found]


def streamed(
    vad: SileroVad, audio: npt.NDArray[np.int16], options: VadOptions, seed: int
) -> tuple[list[SpeechRegion], list[tuple[int, int]]]:
    """Regions from random-sized feeds, plus (regions emitted so far, pending_from) after each."""
    rng = np.random.default_rng(seed)
    stream = vad.stream(options)
    regions: list[SpeechRegion] = []
    promises: list[tuple[int, int]] = []
    position = 0
    while position < len(audio):
        size = int(rng.integers(1, 24_000))
        regions += stream.feed(audio[position : position + size])
        promises.append((len(regions), stream.pending_from_sample))
        position += size
    regions += stream.finish()
    return regions, promises


@pytest.mark.parametrize(
    "options",
    [
        VadOptions(),
        VadOptions(threshold=0.25),
        VadOptions(threshold=0.8, min_speech_duration_ms=500),
        VadOptions(threshold=0.3, min_silence_duration_ms=20, speech_pad_ms=100),
        VadOptions(threshold=0.5, min_silence_duration_ms=300, speech_pad_ms=0),
    ],
    ids=["defaults", "low-threshold", "high-threshold", "short-silence-wide-pad", "no-pad"],
)
def test_streaming_regions_equal_get_speech_timestamps(
    vad: SileroVad, mixed_audio: npt.NDArray[np.int16], options: VadOptions
) -> None:
    expected = reference(vad, mixed_audio, options)
    got, promises = streamed(vad, mixed_audio, options, seed=7)
    assert len(expected) >= 3
    assert got == expected
    # pending_from_sample is a promise: nothing emitted afterwards starts before it
    for emitted_so_far, pending_from in promises:
        assert all(r.start_sample >= pending_from for r in got[emitted_so_far:])


def test_regions_come_out_before_the_end(vad: SileroVad, speech_long: Path) -> None:
    audio = read_wav(speech_long)
    stream = vad.stream(VadOptions())
    early = stream.feed(audio[: len(audio) // 2])
    assert len(early) >= 3
    assert all(r.end_sample <= len(audio) // 2 for r in early)


def test_streams_are_independent(vad: SileroVad, mixed_audio: npt.NDArray[np.int16]) -> None:
    one, two = vad.stream(VadOptions()), vad.stream(VadOptions())
    got_one: list[SpeechRegion] = []
    got_two: list[SpeechRegion] = []
    for start in range(0, len(mixed_audio), 16000):
        got_one += one.feed(mixed_audio[start : start + 16000])
        got_two += two.feed(mixed_audio[start : start + 16000])
    assert (
        [*got_one, *one.finish()]
        == [*got_two, *two.finish()]
        == reference(vad, mixed_audio, VadOptions())
    )


def test_silence_and_noise_have_no_speech(
    vad: SileroVad, silence_wav: Path, noise_wav: Path
) -> None:
    assert vad.speech_regions(read_wav(silence_wav), VadOptions()) == []
    assert vad.speech_regions(read_wav(noise_wav), VadOptions()) == []


def test_empty_stream_has_no_regions(vad: SileroVad) -> None:
    stream = vad.stream(VadOptions())
    assert stream.feed(np.empty(0, dtype=np.int16)) == []
    assert stream.finish() == []
    assert stream.finish() == []


_THREADS_PROBE = """
import sys, torch
torch.set_num_threads(3)
{body}
print(torch.get_num_threads(), "silero_vad.model" in sys.modules)
"""


def run_probe(body: str) -> str:
    code = _THREADS_PROBE.format(body=body)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_load_keeps_torch_thread_count() -> None:
    # the bare import really does change the count, so the restore below is doing the work
    assert run_probe("import silero_vad") == "1 True"
    body = "from gigaam_api.pipeline.vad import SileroVad\nSileroVad.load()"
    assert run_probe(body) == "3 True"
