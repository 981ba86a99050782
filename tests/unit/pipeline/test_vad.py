"""The streaming ONNX VAD against silero's own get_speech_timestamps on real espeak-ng speech."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from gigaam_api.errors import ModelError
from gigaam_api.pipeline.vad import WINDOW_SAMPLES, SileroVad, SpeechRegion, VadStream
from gigaam_api.types import VadOptions
from tests.fixtures.silero_reference import silero_speech_regions, silero_window_probabilities

REPO = Path(__file__).resolve().parents[3]


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
    audio = np.concatenate(
        [read_wav(speech_wav_short), read_wav(noise_wav), read_wav(speech_long)[: 40 * 16000 + 77]]
    )
    assert len(audio) % WINDOW_SAMPLES != 0
    return audio


def regions_of(stream: VadStream, audio: npt.NDArray[np.int16]) -> list[tuple[int, int]]:
    """Everything a stream finds in `audio` fed in one piece."""
    found = [*stream.feed(audio), *stream.finish()]
    return [(region.start_sample, region.end_sample) for region in found]


def fed_in_blocks(
    vad: SileroVad, audio: npt.NDArray[np.int16], options: VadOptions, sizes: list[int]
) -> tuple[list[SpeechRegion], list[tuple[int, int]]]:
    """Regions from feeds of the given sizes (cycled), plus (regions so far, pending_from) after
    each feed."""
    stream = vad.stream(options)
    regions: list[SpeechRegion] = []
    promises: list[tuple[int, int]] = []
    position = 0
    feed = 0
    while position < len(audio):
        size = sizes[feed % len(sizes)]
        regions += stream.feed(audio[position : position + size])
        promises.append((len(regions), stream.pending_from_sample))
        position += size
        feed += 1
    regions += stream.finish()
    return regions, promises


_RANDOM_SIZES = [int(n) for n in np.random.default_rng(7).integers(1, 24_000, size=200)]


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
@pytest.mark.parametrize(
    "sizes",
    [_RANDOM_SIZES, [16_000], [511, 1, 513, 7919], [40 * WINDOW_SAMPLES * 16 + 3]],
    ids=["random", "one-second", "odd", "longer-than-one-call"],
)
def test_streaming_regions_equal_get_speech_timestamps(
    vad: SileroVad, mixed_audio: npt.NDArray[np.int16], options: VadOptions, sizes: list[int]
) -> None:
    expected = silero_speech_regions(mixed_audio, options)
    got, promises = fed_in_blocks(vad, mixed_audio, options, sizes)
    assert len(expected) >= 3
    assert [(r.start_sample, r.end_sample) for r in got] == expected
    # pending_from_sample is a promise: nothing emitted afterwards starts before it
    for emitted_so_far, pending_from in promises:
        assert all(r.start_sample >= pending_from for r in got[emitted_so_far:])


def test_probabilities_equal_the_per_window_model(
    vad: SileroVad, mixed_audio: npt.NDArray[np.int16]
) -> None:
    # the sequence model scores many windows per call; each must match the per-window model
    # that get_speech_timestamps runs (bit-exact on the CPUs measured, see D-060)
    expected = silero_window_probabilities(mixed_audio)
    stream = vad.stream(VadOptions())
    audio = mixed_audio.astype(np.float32) / np.float32(32768.0)
    padded = np.zeros(len(expected) * WINDOW_SAMPLES, dtype=np.float32)
    padded[: len(audio)] = audio
    windows = padded.reshape(-1, WINDOW_SAMPLES)
    got = np.concatenate([stream._score(windows[i : i + 100]) for i in range(0, len(windows), 100)])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert 0.0 < expected.min() < 0.1 and expected.max() > 0.9


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
    got_one += one.finish()
    got_two += two.finish()
    assert got_one == got_two
    assert [(r.start_sample, r.end_sample) for r in got_one] == silero_speech_regions(
        mixed_audio, VadOptions()
    )


def test_silence_and_noise_have_no_speech(
    vad: SileroVad, silence_wav: Path, noise_wav: Path
) -> None:
    for path in (silence_wav, noise_wav):
        audio = read_wav(path)
        assert regions_of(vad.stream(VadOptions()), audio) == []
        assert silero_speech_regions(audio, VadOptions()) == []


def test_empty_stream_has_no_regions(vad: SileroVad) -> None:
    stream = vad.stream(VadOptions())
    assert stream.feed(np.empty(0, dtype=np.int16)) == []
    assert stream.finish() == []
    assert stream.finish() == []
    with pytest.raises(RuntimeError):
        stream.feed(np.zeros(100, dtype=np.int16))


def test_missing_or_broken_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="Silero VAD"):
        SileroVad.load(tmp_path / "absent.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(ModelError, match="Silero VAD"):
        SileroVad.load(broken)


_NO_TORCH_PROBE = """
import sys
from pathlib import Path
import numpy as np
def threads():
    return len(list(Path("/proc/self/task").iterdir()))
from gigaam_api.pipeline.vad import SileroVad
from gigaam_api.types import VadOptions
before = threads()  # importing onnxruntime starts one thread of its own
vad = SileroVad.load()
stream = vad.stream(VadOptions())
rng = np.random.default_rng(0)
stream.feed((rng.standard_normal(16000 * 20) * 3000).astype(np.int16))
stream.finish()
print(threads() - before, "torch" in sys.modules, "silero_vad" in sys.modules)
"""


def test_vad_runs_without_torch_and_without_extra_threads() -> None:
    # the serving path on ONNX Runtime must never import torch (the silero_vad package does);
    # one intra-op thread means the session starts no thread pool
    done = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert done.stdout.split() == ["0", "False", "False"]
