"""The CLI's parsing, pure helpers, `models` listing and error exits (in-process, no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gigaam_api import cli
from gigaam_api.formats import ResponseFormat

pytestmark = pytest.mark.usefixtures("no_settings_env")


# ------------------------------------------------------------------------------ parsing


def test_transcribe_defaults_to_text_on_stdout() -> None:
    args = cli.build_parser().parse_args(["transcribe", "a.wav", "b.mp3"])
    assert args.handler is cli._transcribe
    assert args.files == [Path("a.wav"), Path("b.mp3")]
    assert (args.format, args.model, args.output_dir) == ("text", None, None)


def test_transcribe_takes_format_model_and_output_dir() -> None:
    args = cli.build_parser().parse_args(
        ["transcribe", "a.wav", "--format", "srt", "-m", "v3_rnnt", "-o", "out"]
    )
    assert (args.format, args.model, args.output_dir) == ("srt", "v3_rnnt", "out")


@pytest.mark.parametrize(
    "argv",
    [
        ["transcribe", "a.wav", "--format", "docx"],
        ["transcribe"],
        ["serve", "--port", "http"],
        ["frobnicate"],
        [],
    ],
)
def test_bad_arguments_exit_with_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        cli.build_parser().parse_args(argv)
    assert raised.value.code == 2
    assert "usage: gigaam-api" in capsys.readouterr().err


def test_download_without_names_means_the_configured_model() -> None:
    assert cli.build_parser().parse_args(["download"]).models == []
    args = cli.build_parser().parse_args(["download", "v3_ctc", "v3_e2e_rnnt"])
    assert args.models == ["v3_ctc", "v3_e2e_rnnt"]


def test_serve_overrides_host_and_port() -> None:
    args = cli.build_parser().parse_args(["serve", "--host", "127.0.0.1", "--port", "9000"])
    assert (args.host, args.port) == ("127.0.0.1", 9000)


# ------------------------------------------------------------------------------ pure helpers


@pytest.mark.parametrize(
    ("size_bytes", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (12_345, "12.3 KB"),
        (441_000_000, "441.0 MB"),
        (2_300_000_000, "2.3 GB"),
        (5_000_000_000_000, "5000.0 GB"),
    ],
)
def test_format_bytes(size_bytes: int, expected: str) -> None:
    assert cli.format_bytes(size_bytes) == expected


@pytest.mark.parametrize(
    ("response_format", "output_dir", "expected"),
    [
        ("srt", None, "rec/talk.srt"),
        ("vtt", None, "rec/talk.vtt"),
        ("text", None, "rec/talk.txt"),
        ("json", Path("out"), "out/talk.json"),
        ("verbose_json", Path("out"), "out/talk.json"),
    ],
)
def test_output_path_is_stem_and_extension(
    response_format: ResponseFormat, output_dir: Path | None, expected: str
) -> None:
    assert cli.output_path(Path("rec/talk.mp3"), response_format, output_dir) == Path(expected)


# ------------------------------------------------------------------------------ models


def _cache(models_dir: Path) -> None:
    models_dir.mkdir()
    (models_dir / "v3_ctc.ckpt").write_bytes(b"\0" * 2500)
    (models_dir / "v3_e2e_ctc.ckpt").write_bytes(b"\0" * 4000)
    (models_dir / "v3_e2e_ctc_tokenizer.model").write_bytes(b"\0" * 1000)


def test_list_models_reports_cached_sizes_and_the_configured_alias(tmp_path: Path) -> None:
    _cache(tmp_path / "models")
    rows = {row.name: row for row in cli.list_models(tmp_path / "models", "e2e_ctc")}
    assert rows["v3_ctc"] == cli.ModelRow("v3_ctc", 2500, configured=False)
    assert rows["v3_e2e_ctc"] == cli.ModelRow("v3_e2e_ctc", 5000, configured=True)
    assert rows["v3_rnnt"] == cli.ModelRow("v3_rnnt", None, configured=False)
    assert [row.name for row in rows.values() if row.cached_bytes is not None] == [
        "v3_ctc",
        "v3_e2e_ctc",
    ]


def test_models_command_prints_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _cache(tmp_path / "models")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    assert cli.main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["MODEL", "CACHED", "SIZE"]
    table = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.startswith("v")}
    assert table["v3_ctc"] == ["yes", "2.5", "KB", "<-", "MODEL"]
    assert table["v3_e2e_ctc"] == ["yes", "5.0", "KB"]
    assert table["v1_rnnt"] == ["no", "-"]
    assert f"Models dir: {tmp_path / 'models'}" in lines


# ------------------------------------------------------------------------------ errors


def test_invalid_setting_is_one_line_naming_it_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_QUEUE", "0")
    assert cli.main(["models"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("gigaam-api: error: Invalid settings: MAX_QUEUE:")


def test_transcribe_of_a_missing_file_fails_before_loading_a_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["transcribe", "nowhere.wav"]) == 2
    assert capsys.readouterr().err == "gigaam-api: error: nowhere.wav: no such file\n"


def test_transcribe_into_a_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    assert cli.main(["transcribe", str(audio), "-o", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err == f"gigaam-api: error: --output-dir {tmp_path / 'none'}: not a directory\n"


def test_serve_with_an_invalid_port_setting_exits_2_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "http")
    assert cli.main(["serve"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("gigaam-api: error: Invalid settings: PORT:")


def test_serve_refuses_a_model_outside_allowed_models_before_listening(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import uvicorn

    def never_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("uvicorn must not start")

    monkeypatch.setattr(uvicorn, "run", never_run)
    monkeypatch.setenv("MODEL", "v2_rnnt")
    assert cli.main(["serve"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("gigaam-api: error: MODEL=v2_rnnt is not in ALLOWED_MODELS (v3_ctc,")
    monkeypatch.setenv("MODEL", "v2_rnnt")
    assert cli.main(["models"]) == 0  # only the server refuses; the other commands still work
