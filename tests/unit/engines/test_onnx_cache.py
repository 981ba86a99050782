"""The export cache: the child-process export, its manifest, re-export on any mismatch, atomic
installs, the fallback directory for a read-only MODELS_DIR and one export at a time."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from gigaam_api import __version__
from gigaam_api.engines import onnx_cache
from gigaam_api.engines.onnx import OnnxEngine
from gigaam_api.engines.onnx_cache import (
    GRAPH_FILE,
    MANIFEST_FILE,
    Manifest,
    ManifestError,
    Precision,
    load_manifest,
    prepare_export,
    stale_reason,
)
from gigaam_api.engines.onnx_export import export_model
from gigaam_api.errors import ExportError
from gigaam_api.weights import md5_of_file
from testkit.checkpoints import tokenizer_path_for, write_checkpoint


@pytest.fixture
def checkpoint(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> Path:
    """A private copy of the small v3_e2e_ctc checkpoint (with its tokenizer) in models/."""
    models = tmp_path / "models"
    models.mkdir()
    source = tiny_checkpoints["v3_e2e_ctc"]
    shutil.copy2(source, models / source.name)
    shutil.copy2(tokenizer_path_for(source), tokenizer_path_for(models / source.name))
    return models / source.name


class InProcessExports:
    """Stands in for the child process and counts the calls: copies the session's export of the
    same checkpoint when there is one (saves a trace per test), else runs export_model here."""

    def __init__(self, ready: Path) -> None:
        self.ready = ready
        self.calls = 0
        self.fail_after_writing = False

    def __call__(
        self, out: Path, checkpoint: Path, tokenizer: Path | None, precision: Precision, model: str
    ) -> None:
        self.calls += 1
        if precision == "fp32" and load_manifest(self.ready).checkpoint.matches(checkpoint):
            shutil.copytree(self.ready, out, dirs_exist_ok=True)
        else:
            export_model(checkpoint, tokenizer, out, precision=precision, model_id=model)
        if self.fail_after_writing:
            raise ExportError("killed halfway")


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch, fp32_exports: dict[str, Path]) -> InProcessExports:
    fake = InProcessExports(fp32_exports["v3_e2e_ctc"])
    monkeypatch.setattr(onnx_cache, "_run_export_child", fake)
    return fake


@pytest.fixture(autouse=True)
def _user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "user-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


def _prepare(checkpoint: Path, precision: Precision = "fp32") -> Path:
    return prepare_export(
        checkpoint, tokenizer_path_for(checkpoint), precision=precision, model_id="e2e"
    )


def test_the_child_process_exports_beside_the_checkpoint_with_a_full_manifest(
    checkpoint: Path,
) -> None:
    directory = _prepare(checkpoint)
    assert directory == checkpoint.parent / "onnx" / "v3_e2e_ctc-fp32"
    manifest = load_manifest(directory)
    assert (manifest.model_id, manifest.kind, manifest.precision) == ("e2e", "ctc", "fp32")
    assert (manifest.blank_id, manifest.vocabulary, manifest.min_samples) == (160, None, 320)
    assert manifest.checkpoint.md5 == md5_of_file(checkpoint)
    assert manifest.checkpoint.size_bytes == checkpoint.stat().st_size
    assert manifest.tokenizer is not None
    assert manifest.tokenizer.md5 == md5_of_file(tokenizer_path_for(checkpoint))
    assert manifest.versions["gigaam_api"] == __version__
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest.versions)
    assert manifest.opset == 17 and manifest.min_onnxruntime
    assert set(manifest.files) == {GRAPH_FILE, "tokenizer.model"}
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [GRAPH_FILE, MANIFEST_FILE, "tokenizer.model"]
    )
    assert [p.name for p in directory.parent.iterdir() if p.name.startswith(".")] == [
        ".v3_e2e_ctc-fp32.lock"
    ]  # no staging directory left behind
    assert OnnxEngine(directory).transcribe_batch([]) == []


def test_a_failing_export_names_the_cause_and_leaves_nothing(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    broken = tmp_path / "broken" / "mine.ckpt"
    broken.parent.mkdir()
    broken.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ExportError, match=r"(?s)failed.*mine\.ckpt"):
        prepare_export(broken, None, precision="fp32", model_id="mine")
    assert [p.name for p in (broken.parent / "onnx").iterdir()] == [".mine-fp32.lock"]


def test_a_current_export_is_reused(checkpoint: Path, exports: InProcessExports) -> None:
    first = _prepare(checkpoint)
    written = (first / MANIFEST_FILE).stat().st_mtime_ns
    assert _prepare(checkpoint) == first
    assert exports.calls == 1
    assert (first / MANIFEST_FILE).stat().st_mtime_ns == written


def test_a_touched_but_identical_checkpoint_is_still_current(
    checkpoint: Path, exports: InProcessExports
) -> None:
    _prepare(checkpoint)
    os.utime(checkpoint, ns=(1_000_000_000, 1_000_000_000))  # a copy that kept no mtime
    _prepare(checkpoint)
    assert exports.calls == 1


def test_another_checkpoint_of_the_same_name_triggers_a_re_export(
    checkpoint: Path, exports: InProcessExports
) -> None:
    directory = _prepare(checkpoint)
    write_checkpoint(checkpoint, "v3_e2e_ctc", seed=42)
    assert stale_reason(directory, checkpoint, tokenizer_path_for(checkpoint), "fp32") == (
        "made from another v3_e2e_ctc.ckpt"
    )
    assert _prepare(checkpoint) == directory
    assert exports.calls == 2
    assert load_manifest(directory).checkpoint.md5 == md5_of_file(checkpoint)


def _rewrite_manifest(directory: Path, **changes: Any) -> None:
    changed = dataclasses.replace(load_manifest(directory), **changes)
    (directory / MANIFEST_FILE).write_text(changed.to_json(), encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: _rewrite_manifest(d, export_format=0), "export format 0"),
        (lambda d: _rewrite_manifest(d, opset=13), "opset 13"),
        (lambda d: _rewrite_manifest(d, versions={"gigaam_api": "0.0.1"}), "project version"),
        (lambda d: _rewrite_manifest(d, min_onnxruntime="99.0"), "onnxruntime >= 99.0"),
        (lambda d: (d / GRAPH_FILE).write_bytes(b"truncated"), "model.onnx is missing or"),
        (lambda d: (d / "tokenizer.model").unlink(), "tokenizer.model is missing"),
        (lambda d: (d / MANIFEST_FILE).write_text("{", encoding="utf-8"), "unreadable"),
        (lambda d: (d / MANIFEST_FILE).unlink(), "no export yet"),
    ],
)
def test_a_manifest_that_does_not_match_triggers_a_re_export(
    checkpoint: Path, exports: InProcessExports, damage: object, reason: str
) -> None:
    directory = _prepare(checkpoint)
    damage(directory)  # type: ignore[operator]
    found = stale_reason(directory, checkpoint, tokenizer_path_for(checkpoint), "fp32")
    assert found is not None and reason in found
    _prepare(checkpoint)
    assert exports.calls == 2
    assert stale_reason(directory, checkpoint, tokenizer_path_for(checkpoint), "fp32") is None


def test_another_tokenizer_or_precision_is_not_current(
    checkpoint: Path, exports: InProcessExports
) -> None:
    tokenizer = tokenizer_path_for(checkpoint)
    directory = _prepare(checkpoint)
    assert stale_reason(directory, checkpoint, tokenizer, "fp32") is None
    assert stale_reason(directory, checkpoint, tokenizer, "int8") == (
        "made with precision fp32, this run needs int8"
    )
    assert stale_reason(directory, checkpoint, None, "fp32") == "made with another tokenizer"
    tokenizer.write_bytes(tokenizer.read_bytes() + b"\0")
    assert stale_reason(directory, checkpoint, tokenizer, "fp32") == "made with another tokenizer"


def test_an_interrupted_export_leaves_the_previous_one_and_no_partial_files(
    checkpoint: Path, exports: InProcessExports
) -> None:
    directory = _prepare(checkpoint)
    write_checkpoint(checkpoint, "v3_e2e_ctc", seed=7)  # the cached export is now stale
    exports.fail_after_writing = True
    with pytest.raises(ExportError, match="killed halfway"):
        _prepare(checkpoint)
    assert sorted(p.name for p in directory.parent.iterdir()) == [
        ".v3_e2e_ctc-fp32.lock", "v3_e2e_ctc-fp32",
    ]  # fmt: skip
    assert stale_reason(directory, checkpoint, tokenizer_path_for(checkpoint), "fp32") == (
        "made from another v3_e2e_ctc.ckpt"
    )  # the old export is untouched, and still not taken for the new checkpoint
    exports.fail_after_writing = False
    assert _prepare(checkpoint) == directory


def test_a_read_only_models_dir_falls_back_to_the_user_cache(
    checkpoint: Path, exports: InProcessExports, monkeypatch: pytest.MonkeyPatch, _user_cache: Path
) -> None:
    models = checkpoint.parent
    real_mkdtemp = tempfile.mkdtemp

    def read_only_models(*args: object, **kwargs: object) -> str:
        if Path(str(kwargs["dir"])).is_relative_to(models):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdtemp(*args, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(tempfile, "mkdtemp", read_only_models)
    directory = _prepare(checkpoint)
    assert directory.is_relative_to(_user_cache / "gigaam-api" / "onnx")
    assert directory.name.startswith("v3_e2e_ctc-fp32-")
    assert not (models / "onnx" / "v3_e2e_ctc-fp32").exists()
    assert _prepare(checkpoint) == directory and exports.calls == 1  # found there next time


def test_no_writable_place_is_an_export_error(
    checkpoint: Path, exports: InProcessExports, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nowhere(*args: object, **kwargs: object) -> str:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", nowhere)
    with pytest.raises(ExportError, match="No writable place"):
        _prepare(checkpoint)


def test_concurrent_callers_export_once(checkpoint: Path, exports: InProcessExports) -> None:
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(_prepare(checkpoint))) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 3 and len(set(results)) == 1
    assert exports.calls == 1


def test_manifest_round_trip_and_type_checks(checkpoint: Path, exports: InProcessExports) -> None:
    directory = _prepare(checkpoint)
    manifest = load_manifest(directory)
    assert Manifest.from_json(manifest.to_json()) == manifest
    data = json.loads(manifest.to_json())
    for key, value in [("blank_id", "160"), ("kind", "tdt"), ("vocabulary", [1, 2]), ("files", 3)]:
        with pytest.raises(ManifestError):
            Manifest.from_json(json.dumps({**data, key: value}))
    with pytest.raises(ManifestError):
        Manifest.from_json("[]")
