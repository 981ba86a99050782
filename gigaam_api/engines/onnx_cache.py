"""The exported ONNX graphs on disk: their manifest, where they are cached, when to re-export.

One directory per checkpoint and precision, `<checkpoint dir>/onnx/<stem>-<precision>/`, holding
the graph, the RNN-T head weights (.npz), a copy of the tokenizer and `manifest.json`, which
records everything the ONNX engine needs and what the files were made from. A manifest that does
not match (another checkpoint, project version, export format or precision, a changed file)
means a re-export. The export runs in a child process (`python -m
gigaam_api.engines.onnx_export`), so this module and the engine never import torch. A new export
is built in a temporary directory and renamed into place, so an interrupted one leaves nothing
that loads. When the checkpoint's directory is read-only the cache moves to a per-user one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from gigaam_api import __version__
from gigaam_api.errors import ExportError
from gigaam_api.weights import md5_of_file

logger = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]

EXPORT_FORMAT = 1
"""Bumped whenever the graph's inputs, outputs or the files' meaning change."""
OPSET = 17
MIN_ONNXRUNTIME = "1.20"
"""The oldest ONNX Runtime the exported graphs are tested with (opset 17, int8 contrib ops)."""

MANIFEST_FILE = "manifest.json"
GRAPH_FILE = "model.onnx"
RNNT_WEIGHTS_FILE = "rnnt_head.npz"
TOKENIZER_FILE = "tokenizer.model"
INPUT_NAMES = ("waveforms", "lengths")
"""[B, N] float32 zero-padded samples, [B] int64 lengths."""
OUTPUT_NAMES = ("outputs", "frames")
"""[B, T', X] float32 frame outputs (CTC log-probs or RNN-T joint-space encoder), [B] int64."""


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class ManifestError(ValueError):
    """manifest.json is missing a field or holds a value of the wrong type."""


@dataclass(frozen=True)
class SourceFile:
    """A file an export was made from, as it was then."""

    name: str
    size_bytes: int
    mtime_ns: int
    md5: str

    @classmethod
    def of(cls, path: Path) -> SourceFile:
        stat = path.stat()
        return cls(path.name, stat.st_size, stat.st_mtime_ns, md5_of_file(path))

    def matches(self, path: Path) -> bool:
        """Same size and modification time, or (after a copy) the same MD5."""
        try:
            stat = path.stat()
        except OSError:
            return False
        if stat.st_size != self.size_bytes:
            return False
        return stat.st_mtime_ns == self.mtime_ns or md5_of_file(path) == self.md5


@dataclass(frozen=True)
class Manifest:
    """Everything the ONNX engine needs besides the graph, and what the export was made from."""

    model_id: str
    kind: Literal["ctc", "rnnt"]
    precision: Precision
    blank_id: int
    vocabulary: tuple[str, ...] | None
    """The characters of a char model; None means TOKENIZER_FILE (SentencePiece)."""
    max_symbols_per_step: int
    min_samples: int
    """Shorter inputs carry no speech (one STFT window)."""
    min_batch_samples: int
    """The narrowest batch the graph accepts; the engine zero-pads up to it."""
    checkpoint: SourceFile
    tokenizer: SourceFile | None
    files: Mapping[str, int]
    """File name → size in bytes of every file the engine reads."""
    versions: Mapping[str, str]
    """Who made it: gigaam_api, torch, onnx, onnxruntime."""
    export_format: int = EXPORT_FORMAT
    opset: int = OPSET
    min_onnxruntime: str = MIN_ONNXRUNTIME
    sample_rate: int = 16_000
    input_names: tuple[str, ...] = INPUT_NAMES
    output_names: tuple[str, ...] = OUTPUT_NAMES
    notes: Mapping[str, Any] = field(default_factory=dict)
    """Free-form facts of the export (for people reading the file), never checked."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ManifestError("not a JSON object")
            return cls(
                model_id=_typed(data, "model_id", str),
                kind=_choice(data, "kind", ("ctc", "rnnt")),
                precision=_choice(data, "precision", ("fp32", "int8")),
                blank_id=_typed(data, "blank_id", int),
                vocabulary=_strings(data["vocabulary"]) if data.get("vocabulary") else None,
                max_symbols_per_step=_typed(data, "max_symbols_per_step", int),
                min_samples=_typed(data, "min_samples", int),
                min_batch_samples=_typed(data, "min_batch_samples", int),
                checkpoint=SourceFile(**_typed(data, "checkpoint", dict)),
                tokenizer=SourceFile(**data["tokenizer"]) if data.get("tokenizer") else None,
                files={str(k): int(v) for k, v in _typed(data, "files", dict).items()},
                versions={str(k): str(v) for k, v in _typed(data, "versions", dict).items()},
                export_format=_typed(data, "export_format", int),
                opset=_typed(data, "opset", int),
                min_onnxruntime=_typed(data, "min_onnxruntime", str),
                sample_rate=_typed(data, "sample_rate", int),
                input_names=_strings(_typed(data, "input_names", list)),
                output_names=_strings(_typed(data, "output_names", list)),
                notes=_typed(data, "notes", dict),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"unreadable manifest: {exc}") from exc


def _typed(data: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ManifestError(f"{key} = {value!r} is not a {kind.__name__}")
    return value


def _choice(data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> Any:
    value = data[key]
    if value not in allowed:
        raise ManifestError(f"{key} = {value!r} is not one of {allowed}")
    return value


def _strings(values: Any) -> tuple[str, ...]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ManifestError(f"{values!r} is not a list of strings")
    return tuple(values)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def installed_onnxruntime() -> str:
    return importlib.metadata.version("onnxruntime")


def stale_reason(
    directory: Path, checkpoint: Path, tokenizer: Path | None, precision: Precision
) -> str | None:
    """Why the export in `directory` cannot serve this checkpoint (None: it can)."""
    try:
        manifest = Manifest.from_json((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no export yet"
    except (OSError, ManifestError) as exc:
        return str(exc)
    expected = {
        "export format": (manifest.export_format, EXPORT_FORMAT),
        "opset": (manifest.opset, OPSET),
        "precision": (manifest.precision, precision),
        "project version": (manifest.versions.get("gigaam_api"), __version__),
    }
    for what, (found, wanted) in expected.items():
        if found != wanted:
            return f"made with {what} {found}, this run needs {wanted}"
    if _version_tuple(installed_onnxruntime()) < _version_tuple(manifest.min_onnxruntime):
        return f"needs onnxruntime >= {manifest.min_onnxruntime}"
    for name, size_bytes in manifest.files.items():
        path = directory / name
        if not path.is_file() or path.stat().st_size != size_bytes:
            return f"{name} is missing or has the wrong size"
    if not manifest.checkpoint.matches(checkpoint):
        return f"made from another {checkpoint.name}"
    if (manifest.tokenizer is None) != (tokenizer is None) or (
        manifest.tokenizer is not None and tokenizer is not None
        and not manifest.tokenizer.matches(tokenizer)
    ):  # fmt: skip
        return "made with another tokenizer"
    return None


def load_manifest(directory: Path) -> Manifest:
    """The manifest of an export directory (ManifestError when unreadable)."""
    try:
        text = (directory / MANIFEST_FILE).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read {directory / MANIFEST_FILE}: {exc}") from exc
    return Manifest.from_json(text)


# --------------------------------------------------------------------------- where exports live


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/gigaam-api (default ~/.cache/gigaam-api)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gigaam-api"


def export_directories(checkpoint: Path, precision: Precision) -> tuple[Path, Path]:
    """Beside the checkpoint first; a per-user cache when that directory is read-only.

    The fallback's name carries a hash of the checkpoint's directory, so two checkpoints with
    the same name in different places never share an export.
    """
    name = f"{checkpoint.stem}-{precision}"
    beside = checkpoint.parent / "onnx" / name
    where = hashlib.sha256(str(checkpoint.resolve().parent).encode()).hexdigest()[:8]
    return beside, user_cache_dir() / "onnx" / f"{name}-{where}"


def prepare_export(
    checkpoint: Path, tokenizer: Path | None, *, precision: Precision, model_id: str
) -> Path:
    """A directory holding a current export of the checkpoint, exporting it when needed.

    Returns:
        The directory; its manifest matches the checkpoint, tokenizer and precision.

    Raises:
        ExportError: the export failed or no candidate directory is writable.
    """
    candidates = export_directories(checkpoint, precision)
    for directory in candidates:
        if stale_reason(directory, checkpoint, tokenizer, precision) is None:
            return directory
    problems: list[str] = []
    for directory in candidates:
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            with _export_lock(directory):
                # another process may have finished the export while this one waited
                reason = stale_reason(directory, checkpoint, tokenizer, precision)
                if reason is None:
                    return directory
                logger.info(
                    "Exporting %s to ONNX (%s) in %s: %s; this takes a minute or two",
                    model_id,
                    precision,
                    directory,
                    reason,
                )
                _export_into(directory, checkpoint, tokenizer, precision, model_id)
                return directory
        except OSError as exc:
            if exc.errno not in _NOT_WRITABLE:
                raise ExportError(f"Cannot write the ONNX export into {directory}: {exc}") from exc
            problems.append(f"{directory.parent}: {exc.strerror or exc}")
            logger.warning("Cannot cache the ONNX export in %s (%s)", directory.parent, exc)
    raise ExportError("No writable place for the ONNX export: " + "; ".join(problems))


@contextlib.contextmanager
def _export_lock(directory: Path) -> Iterator[None]:
    """One export per directory at a time, across processes (a server and `download`)."""
    lock_path = directory.with_name(f".{directory.name}.lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _export_into(
    directory: Path, checkpoint: Path, tokenizer: Path | None, precision: Precision, model_id: str
) -> None:
    for leftover in directory.parent.glob(f".{directory.name}.*-*"):
        shutil.rmtree(leftover, ignore_errors=True)  # from an export that was killed
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.new-", dir=directory.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users
        _run_export_child(staging, checkpoint, tokenizer, precision, model_id)
        for path in staging.iterdir():
            with path.open("rb") as stream:
                os.fsync(stream.fileno())
        retired = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        if directory.exists():
            os.replace(directory, retired)
        os.replace(staging, directory)
        shutil.rmtree(retired, ignore_errors=True)
        logger.info("Exported %s (%s) into %s", model_id, precision, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run_export_child(
    out: Path, checkpoint: Path, tokenizer: Path | None, precision: Precision, model_id: str
) -> None:
    command = [
        sys.executable, "-m", "gigaam_api.engines.onnx_export", str(checkpoint),
        "--out", str(out), "--precision", precision, "--model-id", model_id,
    ]  # fmt: skip
    if tokenizer is not None:
        command += ["--tokenizer", str(tokenizer)]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    tail: list[str] = []
    with child:
        for line in child.stderr:
            line = line.rstrip()
            logger.info("export: %s", line)
            tail = [*tail[-19:], line]
    if child.returncode != 0:
        details = "\n".join(tail)
        raise ExportError(
            f"Exporting {checkpoint.name} to ONNX failed (exit code {child.returncode}):\n{details}"
        )
