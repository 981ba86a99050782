"""The `gigaam-api` command end to end: downloads from the loopback CDN, local transcription of
real speech with a small official-format checkpoint, run as a real subprocess where it matters.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gigaam_api import cli
from gigaam_api.engines.onnx_cache import stale_reason
from testkit.checkpoints import tokenizer_path_for
from tests.fixtures.audio import wav_seconds
from tests.fixtures.cdn import FakeCdn, publish_model
from tests.fixtures.processes import ServerProcess, start_server_process
from tests.fixtures.settings import environ_without_settings

CLI = Path(sys.executable).with_name("gigaam-api")
pytestmark = pytest.mark.usefixtures("no_settings_env")


def run_cli(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script with only the given settings in its environment."""
    env = environ_without_settings() | {name.upper(): value for name, value in settings.items()}
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


# ------------------------------------------------------------------------------ download


def test_download_fetches_and_verifies_several_models(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_checkpoints: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctc = publish_model(monkeypatch, fake_cdn, tiny_checkpoints["v3_ctc"], "v3_ctc")
    e2e = publish_model(monkeypatch, fake_cdn, tiny_checkpoints["v3_e2e_ctc"], "v3_e2e_ctc")
    models_dir = tmp_path / "models"
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    monkeypatch.setenv("WEIGHTS_URL", fake_cdn.url)

    assert cli.main(["download", "v3_ctc", "e2e_ctc"]) == 0

    assert (models_dir / "v3_ctc.ckpt").read_bytes() == ctc
    assert (models_dir / "v3_e2e_ctc.ckpt").read_bytes() == e2e
    tokenizer = tokenizer_path_for(tiny_checkpoints["v3_e2e_ctc"]).read_bytes()
    assert (models_dir / "v3_e2e_ctc_tokenizer.model").read_bytes() == tokenizer
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0::3] == [
        f"v3_ctc: ready, {cli.format_bytes(len(ctc))} in {models_dir}",
        f"v3_e2e_ctc: ready, {cli.format_bytes(len(e2e) + len(tokenizer))} in {models_dir}",
    ]
    # on a CPU (ENGINE=auto) the server will run ONNX Runtime: download prepares its graph too
    for name, line in (("v3_ctc", lines[2]), ("v3_e2e_ctc", lines[5])):
        export = models_dir / "onnx" / f"{name}-fp32"
        assert line.startswith(f"{name}: ONNX fp32 ready, ") and line.endswith(f" in {export}")
        assert stale_reason(export, models_dir / f"{name}.ckpt", None if name == "v3_ctc" else
                            models_dir / f"{name}_tokenizer.model", "fp32") is None  # fmt: skip
    # without a terminal, progress is a line per 10 %, ending at 100 % for each checkpoint
    assert re.search(r"^v3_ctc\.ckpt \[#+\] 100% ", captured.err, flags=re.MULTILINE)
    assert re.search(r"^v3_e2e_ctc\.ckpt \[#+\] 100% ", captured.err, flags=re.MULTILINE)

    # a second run finds the verified cache and the export, and asks the CDN for nothing
    requests_before = len(fake_cdn.requests)
    graph = models_dir / "onnx" / "v3_ctc-fp32" / "model.onnx"
    exported_at = graph.stat().st_mtime_ns
    assert cli.main(["download", "v3_ctc"]) == 0
    assert len(fake_cdn.requests) == requests_before
    assert graph.stat().st_mtime_ns == exported_at
    capsys.readouterr()
    assert cli.main(["download", "--no-export", "v3_ctc"]) == 0
    assert "ONNX" not in capsys.readouterr().out


def test_download_of_wrong_bytes_fails_in_one_line_and_leaves_nothing(
    tmp_path: Path, fake_cdn: FakeCdn
) -> None:
    fake_cdn.serve("v3_ctc.ckpt", b"not the official checkpoint" * 100)
    models_dir = tmp_path / "models"

    result = run_cli("download", "v3_ctc", models_dir=str(models_dir), weights_url=fake_cdn.url)

    assert result.returncode == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("gigaam-api:")]
    assert len(errors) == 1
    assert errors[0].startswith("gigaam-api: error: v3_ctc: v3_ctc.ckpt from ")
    assert "73413e7be9c6a5935827bfab5c0dd678" in errors[0]  # the official MD5 it expected
    assert list(models_dir.iterdir()) == []


def test_download_of_a_model_the_cdn_lacks_names_the_http_status(
    tmp_path: Path, fake_cdn: FakeCdn
) -> None:
    result = run_cli(
        "download", "v1_ctc", models_dir=str(tmp_path / "models"), weights_url=fake_cdn.url
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(
        "gigaam-api: error: v1_ctc: Downloading " + fake_cdn.url + "/v1_ctc.ckpt failed: HTTP 404"
    )


def test_download_of_an_unknown_name_lists_the_official_ones(tmp_path: Path) -> None:
    result = run_cli("download", "v9_ctc", models_dir=str(tmp_path / "models"))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("gigaam-api: error: v9_ctc: MODEL='v9_ctc' is neither an official model")
    assert "v3_e2e_rnnt" in line


# ------------------------------------------------------------------------------ transcribe

_SRT_TIME = r"(\d\d):(\d\d):(\d\d),(\d\d\d)"


@dataclass(frozen=True)
class Cue:
    number: int
    start_s: float
    end_s: float
    text: str


def _seconds(match: tuple[str, ...]) -> float:
    hours, minutes, seconds, millis = (int(part) for part in match)
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def parse_srt(text: str) -> list[Cue]:
    """SubRip blocks: number, `start --> end`, then one or more text lines."""
    cues = []
    for block in text.strip().split("\n\n"):
        number, timing, *lines = block.split("\n")
        match = re.fullmatch(f"{_SRT_TIME} --> {_SRT_TIME}", timing)
        assert match, timing
        groups = match.groups()
        cues.append(Cue(int(number), _seconds(groups[:4]), _seconds(groups[4:]), " ".join(lines)))
    return cues


def test_transcribe_one_file_writes_srt_to_stdout(
    speech_wav_short: Path, tiny_v3_ctc_checkpoint: Path, tmp_path: Path
) -> None:
    srt = run_cli(
        "transcribe",
        str(speech_wav_short),
        "--format",
        "srt",
        "--model",
        str(tiny_v3_ctc_checkpoint),
    )
    assert srt.returncode == 0, srt.stderr
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    verbose = run_cli(
        "transcribe",
        str(speech_wav_short),
        "-f",
        "verbose_json",
        "-m",
        str(tiny_v3_ctc_checkpoint),
        "-o",
        str(out_dir),
    )
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout == ""
    body = json.loads((out_dir / f"{speech_wav_short.stem}.json").read_text(encoding="utf-8"))

    cues = parse_srt(srt.stdout)
    assert [cue.number for cue in cues] == list(range(1, len(cues) + 1))
    for previous, cue in itertools.pairwise(cues):
        assert previous.end_s <= cue.start_s
    assert all(0 <= cue.start_s < cue.end_s <= body["duration"] + 0.001 for cue in cues)
    # both runs decoded the same audio with the same model: the same words, in order
    assert " ".join(cue.text for cue in cues).split() == body["text"].split()
    assert body["text"].strip()
    assert body["duration"] == pytest.approx(wav_seconds(speech_wav_short), abs=0.01)
    assert body["language"] == "russian"
    assert [word["word"] for word in body["words"]] == body["text"].split()
    assert len(body["segments"]) == len(cues)
    # a short file gets no progress bar
    assert "%" not in srt.stderr


def test_transcribe_several_files_writes_beside_them_and_reports_a_bad_one(
    speech_wav_short: Path, speech_long: Path, tiny_v3_ctc_checkpoint: Path, tmp_path: Path
) -> None:
    short = tmp_path / "short.wav"
    long = tmp_path / "long.wav"
    bad = tmp_path / "bad.mp3"
    short.write_bytes(speech_wav_short.read_bytes())
    long.write_bytes(speech_long.read_bytes())
    bad.write_bytes(bytes((i * 7919 + 13) % 251 for i in range(20_000)))

    result = run_cli(
        "transcribe",
        str(short),
        str(bad),
        str(long),
        "-f",
        "json",
        "-m",
        str(tiny_v3_ctc_checkpoint),
    )

    assert result.returncode == 1
    assert result.stdout == ""
    short_body = json.loads((tmp_path / "short.json").read_text(encoding="utf-8"))
    long_body = json.loads((tmp_path / "long.json").read_text(encoding="utf-8"))
    assert not (tmp_path / "bad.json").exists()
    assert short_body["text"] and long_body["text"]
    assert 7 <= short_body["usage"]["seconds"] <= 10
    assert 60 <= long_body["usage"]["seconds"] <= 90  # the fixture is about 75 s
    errors = [line for line in result.stderr.splitlines() if line.startswith("gigaam-api:")]
    assert errors[0].startswith(f"gigaam-api: error: {bad}: ")
    assert errors[1] == "gigaam-api: error: 1 of 3 files failed"
    assert f"{short} -> {tmp_path / 'short.json'}" in result.stderr
    # the long file (past LONG_FILE_S) shows progress, one line per 10 % without a terminal
    progress = [line for line in result.stderr.splitlines() if line.startswith("long.wav [")]
    percents = [int(line.split("]")[1].split("%")[0]) for line in progress]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert not [line for line in result.stderr.splitlines() if line.startswith("short.wav [")]


def test_transcribe_of_a_bad_file_is_one_line_and_exit_1(
    tiny_v3_ctc_checkpoint: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.ogg"
    bad.write_bytes(bytes((i * 104_729 + 7) % 253 for i in range(30_000)))
    result = run_cli("transcribe", str(bad), "-m", str(tiny_v3_ctc_checkpoint))
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"gigaam-api: error: {bad}: ")


def test_transcribe_with_an_unknown_model_fails_before_any_audio(speech_wav_short: Path) -> None:
    result = run_cli("transcribe", str(speech_wav_short), "-m", "v9_ctc")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("gigaam-api: error: cannot load the model: MODEL='v9_ctc'")


def test_python_dash_m_runs_the_same_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gigaam_api", "models"],
        env={**os.environ, "MODELS_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split() == ["MODEL", "CACHED", "SIZE"]
    assert "v3_ctc" in result.stdout


# ------------------------------------------------------------------------------ serve


def test_serve_is_healthy_by_the_docker_healthcheck_and_stops_cleanly(
    tiny_v3_ctc_checkpoint: Path, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    """What the image runs: `gigaam-api serve`, probed by the Dockerfile's own HEALTHCHECK (on the
    port the server process is seen listening on, so never another process' server)."""
    server = start_server_process(
        tiny_v3_ctc_checkpoint,
        tmp_path,
        CACHE_DIR=str(tmp_path / "cache"),  # not the real home-directory cache
    )
    servers.append(server)
    server.wait_ready()
    health = httpx.get(f"{server.base_url}/health").json()
    assert health["status"] == "ok"
    assert health["model"] == tiny_v3_ctc_checkpoint.stem
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    (healthcheck,) = re.findall(r'CMD \["python", "-c", "(.+)"\]', dockerfile)
    probe = subprocess.run(
        [sys.executable, "-c", healthcheck],
        env={"PORT": str(server.port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr
    server.send(signal.SIGTERM)
    assert server.wait_exit() == 0, server.log()
    assert server.count_lines("Application shutdown complete.") == 1
