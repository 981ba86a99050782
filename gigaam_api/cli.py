"""The `gigaam-api` command: serve, download, transcribe, models.

Only argument parsing, output and exit codes live here; each subcommand imports what it needs
(uvicorn, torch, the pipeline) when it runs, so `gigaam-api --help` and `models` stay instant.
Exit codes: 0 done, 1 a failure (message on stderr), 2 bad arguments or settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gigaam_api.formats import FORMATS, RESPONSE_FORMATS, ResponseFormat, render
from gigaam_api.progress import ProgressBar

if TYPE_CHECKING:
    from gigaam_api.engines.onnx_cache import Precision
    from gigaam_api.settings import Settings
    from gigaam_api.types import DownloadProgress, Transcriber

PROG = "gigaam-api"
EXIT_FAILURE = 1
EXIT_USAGE = 2

STDOUT = "-"

LONG_FILE_S = 30.0
"""Files at least this long get a progress bar while they are transcribed locally."""


class CliError(Exception):
    """A failure to report as one line on stderr, with the exit code to leave with."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ------------------------------------------------------------------------------ progress


def _progress_bar(label: str) -> ProgressBar:
    return ProgressBar(label, sys.stderr, interactive=sys.stderr.isatty())


def format_bytes(size_bytes: int) -> str:
    """Sizes as people read them: 512 B, 12.3 KB, 421.0 MB, 1.2 GB (decimal units)."""
    if size_bytes < 1000:
        return f"{size_bytes} B"
    value = size_bytes / 1000
    for unit in ("KB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


# ------------------------------------------------------------------------------ settings


def _load_settings(**overrides: object) -> Settings:
    from gigaam_api.settings import SettingsError, load_settings

    try:
        return load_settings(
            **{name: value for name, value in overrides.items() if value is not None}
        )
    except SettingsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc


# ------------------------------------------------------------------------------ serve


def _serve(args: argparse.Namespace) -> None:
    settings = _load_settings(host=args.host, port=args.port)
    from gigaam_api.server.serve import serve
    from gigaam_api.settings import SettingsError

    try:
        serve(settings)
    except SettingsError as exc:  # e.g. MODEL outside ALLOWED_MODELS
        raise CliError(str(exc), EXIT_USAGE) from exc


# ------------------------------------------------------------------------------ download


class _DownloadReporter:
    """Turns DownloadProgress callbacks into one progress bar per file."""

    def __init__(self) -> None:
        self._bar: ProgressBar | None = None
        self._file_name = ""

    def __call__(self, progress: DownloadProgress) -> None:
        if self._bar is None or progress.file_name != self._file_name:
            self.finish()
            self._file_name = progress.file_name
            self._bar = _progress_bar(progress.file_name)
        fraction = None
        detail = format_bytes(progress.done_bytes)
        if progress.total_bytes:
            fraction = progress.done_bytes / progress.total_bytes
            detail += f" of {format_bytes(progress.total_bytes)}"
        self._bar.update(fraction, detail)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.finish()
            self._bar = None


def _download(args: argparse.Namespace) -> None:
    settings = _load_settings()
    from gigaam_api.engines.selection import choose_engine
    from gigaam_api.errors import GigaamError
    from gigaam_api.weights import resolve_weights

    models_dir = Path(settings.models_dir).expanduser()
    try:
        export = not args.no_export and choose_engine(settings.engine, settings.device) == "onnx"
    except GigaamError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    for model in args.models or [settings.model]:
        reporter = _DownloadReporter()
        try:
            weights = resolve_weights(model, models_dir, settings.weights_url, reporter)
        except GigaamError as exc:
            raise CliError(f"{model}: {exc}") from exc
        finally:
            reporter.finish()
        files = [weights.checkpoint_path]
        if weights.tokenizer_path is not None:
            files.append(weights.tokenizer_path)
        size_bytes = sum(path.stat().st_size for path in files)
        print(f"{weights.model_id}: ready, {format_bytes(size_bytes)} in {files[0].parent}")
        if export:
            _export_onnx(weights.model_id, files[0], weights.tokenizer_path, settings)


def _export_onnx(
    model_id: str, checkpoint: Path, tokenizer: Path | None, settings: Settings
) -> None:
    """Prepare the ONNX graph the server will load (QUANTIZE_INT8 picks the precision)."""
    from gigaam_api.engines.onnx_cache import prepare_export
    from gigaam_api.errors import GigaamError

    precision: Precision = "int8" if settings.quantize_int8 else "fp32"
    print(f"{model_id}: exporting the {precision} ONNX graph (a minute or two the first time)...")
    try:
        directory = prepare_export(checkpoint, tokenizer, precision=precision, model_id=model_id)
    except GigaamError as exc:
        raise CliError(f"{model_id}: {exc}") from exc
    size_bytes = sum(path.stat().st_size for path in directory.iterdir())
    print(f"{model_id}: ONNX {precision} ready, {format_bytes(size_bytes)} in {directory}")


# ------------------------------------------------------------------------------ models


@dataclass(frozen=True)
class ModelRow:
    """One line of `gigaam-api models`."""

    name: str
    cached_bytes: int | None
    """Size of the cached checkpoint plus tokenizer, None when the checkpoint is not cached."""
    configured: bool


def list_models(models_dir: Path, configured_model: str) -> list[ModelRow]:
    """Every official model, whether its checkpoint is in models_dir, and its size there."""
    from gigaam_api.weights import ALIASES, known_models

    configured = ALIASES.get(configured_model, configured_model)
    rows = []
    for model in known_models():
        checkpoint = models_dir / f"{model.name}.ckpt"
        tokenizer = models_dir / f"{model.name}_tokenizer.model"
        cached_bytes = None
        if checkpoint.is_file():
            cached_bytes = checkpoint.stat().st_size
            if tokenizer.is_file():
                cached_bytes += tokenizer.stat().st_size
        rows.append(ModelRow(model.name, cached_bytes, configured == model.name))
    return rows


def _models(args: argparse.Namespace) -> None:
    settings = _load_settings()
    from gigaam_api.weights import ALIASES

    models_dir = Path(settings.models_dir)
    rows = list_models(models_dir, settings.model)
    name_width = max(len(row.name) for row in rows) + 2
    print(f"{'MODEL':<{name_width}}{'CACHED':<8}{'SIZE':>10}")
    for row in rows:
        cached = "yes" if row.cached_bytes is not None else "no"
        size = format_bytes(row.cached_bytes) if row.cached_bytes is not None else "-"
        marker = "  <- MODEL" if row.configured else ""
        print(f"{row.name:<{name_width}}{cached:<8}{size:>10}{marker}")
    print(f"\nModels dir: {models_dir.resolve()}")
    print("Aliases: " + ", ".join(f"{alias} = {name}" for alias, name in ALIASES.items()))


# ------------------------------------------------------------------------------ transcribe


def output_path(audio_path: Path, response_format: ResponseFormat, output_dir: Path | None) -> Path:
    """Where the transcript of audio_path goes: `<stem>.<ext>` in output_dir or beside the input."""
    directory = output_dir if output_dir is not None else audio_path.parent
    return directory / f"{audio_path.stem}.{FORMATS[response_format].extension}"


def _body_text(body: dict[str, object] | str) -> str:
    if isinstance(body, str):
        return body
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def _transcribe(args: argparse.Namespace) -> None:
    response_format: ResponseFormat = args.format
    destination: str | None = args.output_dir
    if destination is None and len(args.files) == 1:
        destination = STDOUT
    output_dir = None if destination in (None, STDOUT) else Path(destination)
    if output_dir is not None and not output_dir.is_dir():
        raise CliError(f"--output-dir {output_dir}: not a directory", EXIT_USAGE)
    missing = [path for path in args.files if not path.is_file()]
    if missing:
        raise CliError(f"{missing[0]}: no such file", EXIT_USAGE)
    if args.server:
        transcribe_one = _remote_transcriber(args, response_format)
    else:
        transcribe_one = _local_transcriber(args, response_format)

    failures = 0
    for audio_path in args.files:
        try:
            text = transcribe_one(audio_path)
        except _FileError as exc:
            if len(args.files) == 1:
                raise CliError(f"{audio_path}: {exc}") from exc
            print(f"{PROG}: error: {audio_path}: {exc}", file=sys.stderr)
            failures += 1
            continue
        if destination == STDOUT:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            target = output_path(audio_path, response_format, output_dir)
            target.write_text(text, encoding="utf-8")
            print(f"{audio_path} -> {target}", file=sys.stderr)
    if failures:
        raise CliError(f"{failures} of {len(args.files)} files failed")


class _FileError(Exception):
    """One file could not be transcribed (the others still can)."""


def _local_transcriber(
    args: argparse.Namespace, response_format: ResponseFormat
) -> Callable[[Path], str]:
    settings = _load_settings(model=args.model)
    from gigaam_api.bootstrap import build_transcriber
    from gigaam_api.errors import AudioError, GigaamError

    reporter = _DownloadReporter()
    try:
        transcriber = build_transcriber(settings, reporter)
    except GigaamError as exc:
        raise CliError(f"cannot load the model: {exc}") from exc
    finally:
        reporter.finish()

    def transcribe_one(audio_path: Path) -> str:
        try:
            return _transcribe_one(transcriber, audio_path, response_format, settings)
        except AudioError as exc:
            raise _FileError(str(exc)) from exc

    return transcribe_one


def _transcribe_one(
    transcriber: Transcriber, audio_path: Path, response_format: ResponseFormat, settings: Settings
) -> str:
    from gigaam_api.progress import Ticker, describe_progress, estimate
    from gigaam_api.types import Segment

    transcription = transcriber.transcribe(
        audio_path, settings.transcribe_options(), threading.Event()
    )
    duration_s = transcription.duration_s  # probed; 0 when the container does not say
    bar = _progress_bar(audio_path.name) if duration_s >= LONG_FILE_S else None
    started_s = time.monotonic()

    def show() -> None:
        if bar is not None:
            progress = estimate(transcription.processed_s, duration_s, time.monotonic() - started_s)
            bar.update(progress.fraction, describe_progress(progress))

    segments: list[Segment] = []
    ticker = Ticker(show)
    try:
        for segment in transcription:
            segments.append(segment)
        ticker.stop()
        show()
    finally:
        ticker.stop()
        transcription.close()
        if bar is not None:
            bar.finish()
    body = render(response_format, segments, transcription.duration_s, ("segment", "word"))
    return _body_text(body)


def _remote_transcriber(
    args: argparse.Namespace, response_format: ResponseFormat
) -> Callable[[Path], str]:
    from gigaam_api.progress import Progress, describe_progress
    from gigaam_api.remote import JobsClient, RemoteError, transcribe_remote

    api_key = args.api_key if args.api_key is not None else _load_settings().api_key
    client = JobsClient(args.server, api_key)
    fields = {"model": args.model} if args.model else {}

    def transcribe_one(audio_path: Path) -> str:
        bar = _progress_bar(audio_path.name)

        def show(status: dict[str, Any]) -> None:
            if status["status"] == "queued":
                bar.update(None, f"queued, position {status['queue_position']}")
            elif status["status"] in ("running", "done"):
                progress = Progress(
                    status["progress"], status["processed_s"], status["duration_s"], status["eta_s"]
                )
                bar.update(progress.fraction, describe_progress(progress))

        try:
            text = transcribe_remote(client, audio_path, response_format, fields, show)
        except RemoteError as exc:
            raise _FileError(str(exc)) from exc
        finally:
            bar.finish()
        if response_format in ("json", "verbose_json"):
            return _body_text(json.loads(text))
        return text

    return transcribe_one


# ------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (settings come from the environment and .env)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="OpenAI-compatible Russian speech-to-text on GigaAM. Settings come from "
        "environment variables and .env (see .env.example).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP server (HOST, PORT from settings)")
    serve.add_argument("--host", help="listen address (default: HOST)")
    serve.add_argument("--port", type=int, help="listen port (default: PORT)")
    serve.set_defaults(handler=_serve)

    download = commands.add_parser(
        "download",
        help="fetch and verify model weights into MODELS_DIR, export the ONNX graph, then exit",
    )
    download.add_argument(
        "models", nargs="*", metavar="MODEL", help="official model names (default: MODEL)"
    )
    download.add_argument(
        "--no-export",
        action="store_true",
        help="skip exporting the ONNX graph (done by default when ENGINE picks onnx)",
    )
    download.set_defaults(handler=_download)

    transcribe = commands.add_parser(
        "transcribe",
        help="transcribe audio files locally, or on a server with --server",
        description="One file goes to stdout; several go beside their inputs as <stem>.<ext>.",
    )
    transcribe.add_argument("files", nargs="+", type=Path, metavar="FILE")
    transcribe.add_argument("-f", "--format", choices=RESPONSE_FORMATS, default="text")
    transcribe.add_argument("-m", "--model", help="model name or .ckpt path (default: MODEL)")
    transcribe.add_argument(
        "-o",
        "--output-dir",
        metavar="DIR",
        help="write <stem>.<ext> files into DIR; '-' writes everything to stdout",
    )
    transcribe.add_argument(
        "--server",
        metavar="URL",
        help="submit to this gigaam-api server's jobs API (e.g. http://nas:8000) and wait",
    )
    transcribe.add_argument("--api-key", help="the server's key (default: API_KEY)")
    transcribe.set_defaults(handler=_transcribe)

    models = commands.add_parser("models", help="list the official models and which are cached")
    models.set_defaults(handler=_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gigaam-api` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.handler is not _serve:  # the server configures its own logging
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.handler(args)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0
