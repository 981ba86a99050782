"""Turns MODEL (an official name, an alias or a path) into local checkpoint and tokenizer files.

Official files are cached in MODELS_DIR, MD5-verified once (a small `.md5ok` marker remembers it,
so later starts are offline and instant) or downloaded from WEIGHTS_URL with progress, retries
and an atomic rename. Knows nothing of checkpoint contents (no torch here).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gigaam_api.errors import (
    ModelsDirError,
    UnknownModelError,
    WeightsChecksumError,
    WeightsDownloadError,
)
from gigaam_api.permissions import describe_write_failure
from gigaam_api.types import DownloadProgress

logger = logging.getLogger(__name__)

OFFICIAL_WEIGHTS_URL = "https://cdn.chatwm.opensmodel.sberdevices.ru/GigaAM"
"""Upstream's CDN (facts §1.1); WEIGHTS_URL may name a mirror with the same file names."""
DOWNLOAD_ATTEMPTS = 4
RETRY_BASE_DELAY_S = 2.0
"""Backoff before retry n (1-based) is RETRY_BASE_DELAY_S × 2^(n−1)."""
_TIMEOUT_S = 30.0
_CHUNK_BYTES = 1 << 20
_LOG_STEP_PERCENT = 5
_LOG_STEP_BYTES_UNKNOWN_TOTAL = 50 << 20


@dataclass(frozen=True)
class OfficialModel:
    """One row of the official download table (docs/gigaam.md §1)."""

    name: str
    md5: str
    """MD5 of the whole `<name>.ckpt` as published on the CDN."""
    needs_tokenizer: bool
    """Whether `<name>_tokenizer.model` (SentencePiece) is fetched too."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Local files of a model; tokenizer_path is None for character-vocabulary models."""

    model_id: str
    checkpoint_path: Path
    tokenizer_path: Path | None


_OFFICIAL_MD5 = {
    "v1_ctc": "f027f199e590a391d015aeede2e66174",
    "v1_rnnt": "02c758999bcdc6afcb2087ef256d47ef",
    "v2_ctc": "e00f59cb5d39624fb30d1786044795bf",
    "v2_rnnt": "547460139acfebd842323f59ed54ab54",
    "v3_ctc": "73413e7be9c6a5935827bfab5c0dd678",
    "v3_rnnt": "0fd2c9a1ff66abd8d32a3a07f7592815",
    "v3_e2e_ctc": "367074d6498f426d960b25f49531cf68",
    "v3_e2e_rnnt": "2730de7545ac43ad256485a462b0a27a",
    "multilingual_ctc": "5379d887c53ccd9cb95981e2a1832720",
    "multilingual_large_ctc": "79a9adde50dd7f35bbf70927cb6557d0",
}

# Upstream's rule: only v1_rnnt and the e2e models ship a SentencePiece file.
OFFICIAL_MODELS: dict[str, OfficialModel] = {
    name: OfficialModel(name, md5, needs_tokenizer=name == "v1_rnnt" or "e2e" in name)
    for name, md5 in _OFFICIAL_MD5.items()
}

ALIASES = {alias: f"v3_{alias}" for alias in ("ctc", "rnnt", "e2e_ctc", "e2e_rnnt")}
"""Upstream's short names, all meaning the v3 models."""


def known_models() -> tuple[OfficialModel, ...]:
    """The official ASR models this server can download, in table order."""
    return tuple(OFFICIAL_MODELS.values())


def official_name(model: str) -> str | None:
    """The official model MODEL names (upstream's short aliases resolved); None for a path."""
    name = ALIASES.get(model, model)
    return name if name in OFFICIAL_MODELS else None


def model_id(model: str) -> str:
    """The id MODEL is served under: its official name, or a local checkpoint's file stem."""
    return official_name(model) or Path(model).expanduser().stem


def resolve_weights(
    model: str,
    models_dir: Path,
    base_url: str,
    on_progress: Callable[[DownloadProgress], None] | None = None,
) -> ResolvedWeights:
    """Local files for MODEL, downloading and verifying official ones when needed.

    An official name or alias wins over a same-named file; otherwise an existing file (or any
    value ending in .ckpt) is a local checkpoint: no checksum, model id = its stem, tokenizer
    `<stem>_tokenizer.model` beside it when present.
    """
    name = official_name(model)
    if name is None:
        return _local_weights(model)
    official = OFFICIAL_MODELS[name]
    _ensure_dir(models_dir)
    checkpoint = models_dir / f"{name}.ckpt"
    if not _cached_and_verified(checkpoint, official.md5):
        _download(
            f"{base_url.rstrip('/')}/{checkpoint.name}", checkpoint, official.md5, on_progress
        )
    tokenizer = None
    if official.needs_tokenizer:
        tokenizer = models_dir / f"{name}_tokenizer.model"
        if not tokenizer.is_file():  # upstream publishes no checksum for tokenizers
            _download(f"{base_url.rstrip('/')}/{tokenizer.name}", tokenizer, None, on_progress)
    return ResolvedWeights(model_id=name, checkpoint_path=checkpoint, tokenizer_path=tokenizer)


def _local_weights(model: str) -> ResolvedWeights:
    path = Path(model).expanduser()
    if not path.is_file():
        if model.endswith(".ckpt"):
            raise UnknownModelError(f"MODEL={model!r}: no such checkpoint file.")
        names = ", ".join([*OFFICIAL_MODELS, *ALIASES])
        raise UnknownModelError(
            f"MODEL={model!r} is neither an official model ({names}) nor an existing .ckpt file."
        )
    tokenizer = path.with_name(f"{path.stem}_tokenizer.model")
    return ResolvedWeights(
        model_id=model_id(model),
        checkpoint_path=path,
        tokenizer_path=tokenizer if tokenizer.is_file() else None,
    )


# ------------------------------------------------------------------------- verification


def md5_of_file(path: Path) -> str:
    """Hex MD5 of a whole file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _marker_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".md5ok")


def _marker_text(checkpoint: Path, md5: str) -> str:
    stat = checkpoint.stat()
    return f"{stat.st_size} {stat.st_mtime_ns} {md5}\n"


def _write_marker(checkpoint: Path, md5: str) -> None:
    try:
        _marker_path(checkpoint).write_text(_marker_text(checkpoint, md5), encoding="ascii")
    except OSError as exc:  # a read-only cache still works; it is just verified every start
        logger.warning("Cannot record the verification of %s: %s", checkpoint, exc)


def _cached_and_verified(checkpoint: Path, md5: str) -> bool:
    """True when the cached file is the official one; hashes it only when not yet verified."""
    if not checkpoint.is_file():
        return False
    try:
        if _marker_path(checkpoint).read_text(encoding="ascii") == _marker_text(checkpoint, md5):
            return True
    except OSError:
        pass
    logger.info("Verifying the MD5 of %s ...", checkpoint)
    actual = md5_of_file(checkpoint)
    if actual == md5:
        _write_marker(checkpoint, md5)
        return True
    logger.warning(
        "%s has MD5 %s, not the official %s; downloading it again.", checkpoint, actual, md5
    )
    return False


# ---------------------------------------------------------------------------- download


class _RetryableError(Exception):
    """A transfer failed in a way another attempt may fix."""


def _ensure_dir(models_dir: Path) -> None:
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelsDirError(
            f"Cannot create the models directory {models_dir} ({exc.strerror or exc}). "
            + _fix_for(models_dir, exc)
        ) from exc


def _dir_error(directory: Path, exc: OSError) -> ModelsDirError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ModelsDirError(
            f"Cannot write weights into {directory}: the disk is full ({exc.strerror or exc}). "
            "Free space or set MODELS_DIR to a directory with room for the model."
        )
    return ModelsDirError(
        f"Cannot write weights into {directory} ({exc.strerror or exc}). "
        + _fix_for(directory, exc)
    )


def _fix_for(directory: Path, exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return describe_write_failure(directory, "MODELS_DIR", exc)
    return "Set MODELS_DIR to a writable directory."


def _download(
    url: str,
    dest: Path,
    md5: str | None,
    on_progress: Callable[[DownloadProgress], None] | None,
) -> None:
    """Fetch url into dest via `<dest>.part`: resumes or restarts cut transfers, checks MD5."""
    part = dest.with_name(dest.name + ".part")
    state = _Transfer(dest.name, on_progress)
    logger.info("Downloading %s into %s", url, dest.parent)
    try:
        try:
            # Opening first probes writability before any network traffic.
            with part.open("wb") as stream:
                _transfer_with_retries(url, stream, state)
                stream.flush()
                os.fsync(stream.fileno())
        except OSError as exc:
            raise _dir_error(dest.parent, exc) from exc
        if md5 is not None and state.md5() != md5:
            raise WeightsChecksumError(
                f"{dest.name} from {url} has MD5 {state.md5()}, but the official file's is {md5}; "
                "the download was deleted. Check that WEIGHTS_URL points to the official GigaAM "
                "CDN or a faithful mirror and restart; for a custom checkpoint set MODEL to its "
                "path instead."
            )
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if md5 is not None:
        _write_marker(dest, md5)
    logger.info("Downloaded %s (%d bytes)", dest, state.done_bytes)


def _transfer_with_retries(url: str, stream: BinaryIO, state: _Transfer) -> None:
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            _attempt(url, stream, state)
            return
        except _RetryableError as exc:
            if attempt == DOWNLOAD_ATTEMPTS:
                raise WeightsDownloadError(
                    f"Downloading {url} failed after {attempt} attempts: {exc}. "
                    "Check the network and WEIGHTS_URL, then restart."
                ) from exc
            delay_s = RETRY_BASE_DELAY_S * 2 ** (attempt - 1)
            logger.warning(
                "Download of %s interrupted (%s); retry %d/%d in %.1f s",
                url,
                exc,
                attempt,
                DOWNLOAD_ATTEMPTS - 1,
                delay_s,
            )
            time.sleep(delay_s)


class _Transfer:
    """Bytes written so far, their running MD5, progress reporting."""

    def __init__(self, file_name: str, on_progress: Callable[[DownloadProgress], None] | None):
        self.file_name = file_name
        self.on_progress = on_progress
        self.done_bytes = 0
        self.total_bytes: int | None = None
        self._digest = hashlib.md5(usedforsecurity=False)
        self._next_log = 0

    def restart(self, total_bytes: int | None) -> None:
        self.done_bytes = 0
        self.total_bytes = total_bytes
        self._digest = hashlib.md5(usedforsecurity=False)
        self._next_log = 0

    def add(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.done_bytes += len(chunk)
        if self.on_progress is not None:
            self.on_progress(DownloadProgress(self.file_name, self.done_bytes, self.total_bytes))
        if self.done_bytes >= self._next_log:
            self._log()

    def md5(self) -> str:
        return self._digest.hexdigest()

    def _log(self) -> None:
        if self.total_bytes:
            percent = 100 * self.done_bytes // self.total_bytes
            logger.info(
                "%s: %d%% (%.1f of %.1f MB)",
                self.file_name,
                percent,
                self.done_bytes / 1e6,
                self.total_bytes / 1e6,
            )
            step = self.total_bytes * _LOG_STEP_PERCENT // 100 or 1
            self._next_log = (self.done_bytes // step + 1) * step
        else:
            logger.info("%s: %.1f MB", self.file_name, self.done_bytes / 1e6)
            self._next_log = self.done_bytes + _LOG_STEP_BYTES_UNKNOWN_TOTAL


def _attempt(url: str, stream: BinaryIO, state: _Transfer) -> None:
    """One HTTP request: resume at state.done_bytes when the server honours Range."""
    headers = {"User-Agent": "gigaam-api"}
    if state.done_bytes:
        headers["Range"] = f"bytes={state.done_bytes}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code in (408, 429) or exc.code >= 500:
            raise _RetryableError(f"HTTP {exc.code}") from exc
        raise WeightsDownloadError(
            f"Downloading {url} failed: HTTP {exc.code} {exc.reason}. "
            + (
                "No such file on the server; check MODEL and WEIGHTS_URL."
                if exc.code == 404
                else "Check WEIGHTS_URL."
            )
        ) from exc
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
        raise _RetryableError(str(exc)) from exc
    with response:
        length = response.headers.get("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        if response.status == 206 and state.done_bytes:
            if _range_start(response.headers.get("Content-Range")) != state.done_bytes:
                stream.seek(0)
                stream.truncate()
                state.restart(None)
                raise _RetryableError("the server resumed at another offset; starting over")
            logger.info("Resuming %s at byte %d", state.file_name, state.done_bytes)
        else:  # a full response: start the file over
            if state.done_bytes:
                stream.seek(0)
                stream.truncate()
            state.restart(remaining)
        received = 0
        while True:
            try:
                chunk = response.read(_CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise _RetryableError(f"lost after {state.done_bytes} bytes: {exc}") from exc
            if not chunk:
                break
            stream.write(chunk)  # disk errors are not retried: _download maps them
            state.add(chunk)
            received += len(chunk)
        if remaining is not None and received < remaining:
            raise _RetryableError(f"connection closed after {state.done_bytes} bytes")


def _range_start(content_range: str | None) -> int | None:
    """First byte of a `Content-Range: bytes <start>-<end>/<total>` header."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    start = content_range[len("bytes ") :].split("-", 1)[0]
    return int(start) if start.isdigit() else None
