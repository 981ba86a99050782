"""ffprobe/ffmpeg wrappers on real files: durations, every format, typed failures, no leftovers."""

from __future__ import annotations

from pathlib import Path

import pytest

from gigaam_api.errors import AudioDecodeError, AudioToolMissingError, AudioTooLongError
from gigaam_api.pipeline.audio import AudioDecoder, AudioProbe, check_probe, probe_audio
from tests.fixtures.audio import child_processes


def decoded_seconds(path: Path, max_audio_s: float = 0.0) -> float:
    with AudioDecoder(path, max_audio_s=max_audio_s) as decoder:
        samples = sum(len(block) for block in decoder.blocks())
    assert samples == decoder.samples_decoded
    return samples / 16000


def test_probe_reports_duration_and_streams(
    speech_wav_short: Path, audio_formats: dict[str, Path]
) -> None:
    probe = probe_audio(speech_wav_short)
    assert probe.audio_streams == 1 and probe.video_streams == 0
    assert probe.duration_s == pytest.approx(7.45, abs=0.3)
    video = probe_audio(audio_formats["mp4_video"])
    assert video.audio_streams == 1 and video.video_streams == 1


def test_probe_has_no_duration_for_a_piped_container(speech_unknown_duration: Path) -> None:
    assert probe_audio(speech_unknown_duration).duration_s is None


def test_every_format_decodes_to_the_source_length(
    speech_wav_short: Path, audio_formats: dict[str, Path]
) -> None:
    expected_s = decoded_seconds(speech_wav_short)
    assert {"wav", "mp3", "m4a", "ogg_opus", "oga", "flac", "webm", "mkv", "wma"} <= set(
        audio_formats
    )
    for name, path in audio_formats.items():
        # containers pad audio to whole frames or the video track: ~0.1 s over the source
        assert decoded_seconds(path) == pytest.approx(expected_s, abs=0.15), name
    assert child_processes() == []


@pytest.mark.parametrize("name", ["corrupt", "empty", "text", "video_no_audio", "wav_header_only"])
def test_bad_inputs_fail_with_one_line_reason(bad_inputs: dict[str, Path], name: str) -> None:
    path = bad_inputs[name]
    with pytest.raises(AudioDecodeError) as caught:
        check_probe(probe_audio(path), max_audio_s=0)
        decoded_seconds(path)
    message = str(caught.value)
    assert message.startswith("Cannot ")
    assert "\n" not in message and str(path) not in message
    assert child_processes() == []


def test_video_without_audio_says_so(bad_inputs: dict[str, Path]) -> None:
    with pytest.raises(AudioDecodeError, match="no audio track"):
        check_probe(probe_audio(bad_inputs["video_no_audio"]), max_audio_s=0)


def test_truncated_mp3_decodes_what_is_there(truncated_mp3: Path, speech_wav_short: Path) -> None:
    assert 1.0 < decoded_seconds(truncated_mp3) < decoded_seconds(speech_wav_short) * 0.6


def test_missing_tools_are_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, speech_wav_short: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AudioToolMissingError, match="ffprobe"):
        probe_audio(speech_wav_short)
    with pytest.raises(AudioToolMissingError, match="ffmpeg"):
        AudioDecoder(speech_wav_short).start()


def test_probe_limit_rejects_known_long_audio() -> None:
    with pytest.raises(AudioTooLongError) as caught:
        check_probe(AudioProbe(duration_s=75.2, audio_streams=1, video_streams=0), max_audio_s=60)
    assert caught.value.duration_s == 75.2 and caught.value.limit_s == 60
    check_probe(AudioProbe(duration_s=75.2, audio_streams=1, video_streams=0), max_audio_s=0)
    check_probe(AudioProbe(duration_s=None, audio_streams=1, video_streams=0), max_audio_s=1)


def test_decoder_stops_at_the_limit_without_a_known_duration(speech_unknown_duration: Path) -> None:
    decoder = AudioDecoder(speech_unknown_duration, max_audio_s=10.0, block_samples=4000)
    decoder.start()
    pid = decoder.pid
    with pytest.raises(AudioTooLongError):
        for _ in decoder.blocks():
            pass
    assert 10.0 < decoder.samples_decoded / 16000 <= 10.25
    assert decoder.pid is None and pid is not None and not Path(f"/proc/{pid}").exists()
    assert child_processes() == []


def test_close_mid_stream_kills_and_reaps_ffmpeg(speech_long: Path) -> None:
    with AudioDecoder(speech_long, block_samples=1600) as decoder:
        pid = decoder.pid
        first = next(decoder.blocks())
        assert len(first) == 1600
        assert pid in child_processes()
    assert not Path(f"/proc/{pid}").exists()
    assert child_processes() == []
