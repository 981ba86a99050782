"""resolve_weights against a loopback CDN: downloads, retries, checksums, cache, bad MODELS_DIR."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from gigaam_api import weights
from gigaam_api.errors import (
    ModelsDirError,
    UnknownModelError,
    WeightsChecksumError,
    WeightsDownloadError,
)
from gigaam_api.model.checkpoint import load_checkpoint
from gigaam_api.model.gigaam import GigaAM
from gigaam_api.types import DownloadProgress
from gigaam_api.weights import ResolvedWeights, known_models, resolve_weights
from tests.fixtures.cdn import CdnRequest, FakeCdn, publish_model


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "RETRY_BASE_DELAY_S", 0.01)


def test_known_models_cover_the_asr_table() -> None:
    table = {model.name: model for model in known_models()}
    assert set(table) == {
        "v1_ctc", "v1_rnnt", "v2_ctc", "v2_rnnt", "v3_ctc", "v3_rnnt", "v3_e2e_ctc",
        "v3_e2e_rnnt", "multilingual_ctc", "multilingual_large_ctc",
    }  # fmt: skip
    assert {name for name, model in table.items() if model.needs_tokenizer} == {
        "v1_rnnt", "v3_e2e_ctc", "v3_e2e_rnnt",
    }  # fmt: skip
    assert table["v3_ctc"].md5 == "73413e7be9c6a5935827bfab5c0dd678"
    assert table["v3_e2e_rnnt"].md5 == "2730de7545ac43ad256485a462b0a27a"


def test_download_streams_reports_progress_and_loads(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_v3_ctc_checkpoint: Path,
) -> None:
    data = publish_model(monkeypatch, fake_cdn, tiny_v3_ctc_checkpoint, "v3_ctc")
    progress: list[DownloadProgress] = []

    resolved = resolve_weights("v3_ctc", tmp_path / "models", fake_cdn.url, progress.append)

    assert resolved == ResolvedWeights("v3_ctc", tmp_path / "models" / "v3_ctc.ckpt", None)
    assert resolved.checkpoint_path.read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "v3_ctc.ckpt", "v3_ctc.ckpt.md5ok",
    ]  # fmt: skip
    assert progress[-1] == DownloadProgress("v3_ctc.ckpt", len(data), len(data))
    done = [p.done_bytes for p in progress]
    assert done == sorted(done)
    assert load_checkpoint(resolved.checkpoint_path, GigaAM).config.name == "v3_ctc"


def test_alias_and_tokenizer_are_fetched(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_checkpoints: dict[str, Path],
) -> None:
    checkpoint = tiny_checkpoints["v3_e2e_ctc"]
    publish_model(monkeypatch, fake_cdn, checkpoint, "v3_e2e_ctc")
    tokenizer = checkpoint.with_name("v3_e2e_ctc_tokenizer.model").read_bytes()
    fake_cdn.serve("v3_e2e_ctc_tokenizer.model", tokenizer)

    resolved = resolve_weights("e2e_ctc", tmp_path, fake_cdn.url)

    assert resolved.model_id == "v3_e2e_ctc"
    assert resolved.tokenizer_path == tmp_path / "v3_e2e_ctc_tokenizer.model"
    assert resolved.tokenizer_path.read_bytes() == tokenizer
    assert [r.file_name for r in fake_cdn.requests] == [
        "v3_e2e_ctc.ckpt", "v3_e2e_ctc_tokenizer.model",
    ]  # fmt: skip


@pytest.mark.parametrize("honour_range", [True, False])
def test_cut_transfer_is_retried_to_success(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_v3_ctc_checkpoint: Path,
    honour_range: bool,
) -> None:
    data = publish_model(monkeypatch, fake_cdn, tiny_v3_ctc_checkpoint, "v3_ctc")
    fake_cdn.cut_first_transfer("v3_ctc.ckpt", after_bytes=10_000)
    fake_cdn.honour_range = honour_range

    resolved = resolve_weights("v3_ctc", tmp_path, fake_cdn.url)

    assert resolved.checkpoint_path.read_bytes() == data
    # The second request asks to resume; a server ignoring Range sends it all again.
    assert fake_cdn.requests == [
        CdnRequest("v3_ctc.ckpt", None),
        CdnRequest("v3_ctc.ckpt", "bytes=10000-"),
    ]
    assert not list(tmp_path.glob("*.part"))


def test_wrong_bytes_raise_checksum_error_and_leave_nothing(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_v3_ctc_checkpoint: Path,
) -> None:
    data = publish_model(monkeypatch, fake_cdn, tiny_v3_ctc_checkpoint, "v3_ctc")
    fake_cdn.serve("v3_ctc.ckpt", data[:-1] + bytes([data[-1] ^ 0xFF]))

    with pytest.raises(WeightsChecksumError, match=r"MD5 .*deleted.*WEIGHTS_URL"):
        resolve_weights("v3_ctc", tmp_path, fake_cdn.url)
    assert list(tmp_path.iterdir()) == []

    fake_cdn.stop()  # the next start must not pick up anything from the failed attempt
    with pytest.raises(WeightsDownloadError, match="after 4 attempts"):
        resolve_weights("v3_ctc", tmp_path, fake_cdn.url)
    assert list(tmp_path.iterdir()) == []


def test_404_fails_at_once_naming_the_url(tmp_path: Path, fake_cdn: FakeCdn) -> None:
    url = f"{fake_cdn.url}/v3_rnnt.ckpt"
    with pytest.raises(WeightsDownloadError, match=f"{url} failed: HTTP 404"):
        resolve_weights("rnnt", tmp_path, fake_cdn.url)
    assert len(fake_cdn.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_verified_cache_starts_offline(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_v3_ctc_checkpoint: Path,
) -> None:
    data = publish_model(monkeypatch, fake_cdn, tiny_v3_ctc_checkpoint, "v3_ctc")
    first = resolve_weights("v3_ctc", tmp_path, fake_cdn.url)
    fake_cdn.stop()
    calls: list[Path] = []
    monkeypatch.setattr(weights, "md5_of_file", calls.append)  # must not even re-hash

    again = resolve_weights("v3_ctc", tmp_path, fake_cdn.url)

    assert again == first
    assert calls == []
    marker = (tmp_path / "v3_ctc.ckpt.md5ok").read_text().split()
    assert marker == [str(len(data)), str(first.checkpoint_path.stat().st_mtime_ns),
                      hashlib.md5(data).hexdigest()]  # fmt: skip


def test_copied_in_file_is_hashed_once_then_trusted(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_v3_ctc_checkpoint: Path,
) -> None:
    data = publish_model(monkeypatch, fake_cdn, tiny_v3_ctc_checkpoint, "v3_ctc")
    fake_cdn.stop()
    (tmp_path / "v3_ctc.ckpt").write_bytes(data)

    resolved = resolve_weights("v3_ctc", tmp_path, fake_cdn.url)

    assert resolved.checkpoint_path == tmp_path / "v3_ctc.ckpt"
    assert (tmp_path / "v3_ctc.ckpt.md5ok").is_file()
    assert fake_cdn.requests == []


def test_cached_file_with_wrong_md5_is_downloaded_again(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_v3_ctc_checkpoint: Path,
) -> None:
    data = publish_model(monkeypatch, fake_cdn, tiny_v3_ctc_checkpoint, "v3_ctc")
    (tmp_path / "v3_ctc.ckpt").write_bytes(b"half a file")

    resolved = resolve_weights("v3_ctc", tmp_path, fake_cdn.url)

    assert resolved.checkpoint_path.read_bytes() == data
    assert len(fake_cdn.requests) == 1


def test_unwritable_models_dir(tmp_path: Path, fake_cdn: FakeCdn) -> None:
    # sysfs refuses new files even to root, so this is a real "not writable" directory.
    with pytest.raises(ModelsDirError, match=r"/sys/kernel.*MODELS_DIR"):
        resolve_weights("v3_ctc", Path("/sys/kernel"), fake_cdn.url)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ModelsDirError, match="MODELS_DIR"):
        resolve_weights("v3_ctc", blocker / "models", fake_cdn.url)
    assert fake_cdn.requests == []


def test_full_disk_is_a_models_dir_error(
    tmp_path: Path,
    fake_cdn: FakeCdn,
    monkeypatch: pytest.MonkeyPatch,
    tiny_v3_ctc_checkpoint: Path,
) -> None:
    publish_model(monkeypatch, fake_cdn, tiny_v3_ctc_checkpoint, "v3_ctc")
    os.symlink("/dev/full", tmp_path / "v3_ctc.ckpt.part")  # every write fails with ENOSPC

    with pytest.raises(ModelsDirError, match="disk is full"):
        resolve_weights("v3_ctc", tmp_path, fake_cdn.url)
    assert list(tmp_path.iterdir()) == []


def test_local_checkpoint_path(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    e2e = tiny_checkpoints["v3_e2e_rnnt"]
    resolved = resolve_weights(str(e2e), tmp_path / "unused", "http://127.0.0.1:9")
    assert resolved == ResolvedWeights(
        "v3_e2e_rnnt", e2e, e2e.with_name("v3_e2e_rnnt_tokenizer.model")
    )
    renamed = tmp_path / "my-finetune.ckpt"
    renamed.write_bytes(tiny_checkpoints["v3_ctc"].read_bytes())
    assert resolve_weights(str(renamed), tmp_path, "http://127.0.0.1:9") == ResolvedWeights(
        "my-finetune", renamed, None
    )
    assert not (tmp_path / "unused").exists()


def test_unknown_names_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UnknownModelError, match=r"'v9_ctc'.*v3_ctc.*e2e_rnnt"):
        resolve_weights("v9_ctc", tmp_path, "http://127.0.0.1:9")
    with pytest.raises(UnknownModelError, match="no such checkpoint file"):
        resolve_weights(str(tmp_path / "gone.ckpt"), tmp_path, "http://127.0.0.1:9")
