"""GET /v1/models(/{id}) on a real server: ALLOWED_MODELS with the loaded model first and marked.

Open WebUI and LibreChat read only `data[].id` (Open WebUI shows `name` when present, else the
id) and send it back as `model`, so every listed id must also be accepted by the transcription
route (see D-100).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from gigaam_api.settings import Settings
from gigaam_api.types import DownloadProgress, Transcriber
from tests.fixtures.server import RunningServer, ServerFactory

V3_MODELS = ["v3_ctc", "v3_e2e_ctc", "v3_rnnt", "v3_e2e_rnnt"]


def _client(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def _listing(server: RunningServer) -> list[tuple[str, bool]]:
    with _client(server) as client:
        return [(model.id, (model.model_extra or {})["loaded"]) for model in client.models.list()]


def test_list_is_allowed_models_with_the_loaded_one_first_and_marked(
    api_server: RunningServer,
) -> None:
    assert _listing(api_server) == [(name, name == "v3_ctc") for name in V3_MODELS]
    raw = httpx.get(f"{api_server.base_url}/v1/models").json()
    assert raw["object"] == "list"
    assert {key for item in raw["data"] for key in item} == {
        "id",
        "object",
        "created",
        "owned_by",
        "loaded",
    }


def test_retrieve_accepts_listed_models_and_aliases(api_server: RunningServer) -> None:
    with _client(api_server) as client:
        alias = client.models.retrieve("whisper-1")
        assert (alias.id, alias.object, alias.model_extra) == (
            "whisper-1",
            "model",
            {"loaded": True},
        )
        other = client.models.retrieve("v3_rnnt")
        assert (other.id, other.model_extra) == ("v3_rnnt", {"loaded": False})
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve("v2_ctc")
    assert caught.value.code == "model_not_found"


def test_every_listed_id_is_accepted_as_model(
    api_server: RunningServer, speech_wav_short: Path
) -> None:
    with _client(api_server) as client:
        for name, _ in _listing(api_server):
            with speech_wav_short.open("rb") as audio:
                response = client.audio.transcriptions.with_raw_response.create(
                    model=name, file=audio
                )
            assert response.headers["x-model"] == "v3_ctc", name


def test_a_local_checkpoint_is_listed_under_its_stem_before_the_allowed_models(
    server_factory: ServerFactory, tiny_v3_ctc_checkpoint: Path, tmp_path: Path
) -> None:
    local = shutil.copy(tiny_v3_ctc_checkpoint, tmp_path / "my-finetune.ckpt")
    server = server_factory(model=str(local))
    assert _listing(server) == [("my-finetune", True)] + [(name, False) for name in V3_MODELS]
    alone = server_factory(model=str(local), allowed_models=[])
    assert _listing(alone) == [("my-finetune", True)]


def test_while_loading_the_configured_model_is_first_and_nothing_is_marked(
    server_factory: ServerFactory,
) -> None:
    release = threading.Event()

    def held_factory(
        settings: Settings, on_progress: Callable[[DownloadProgress], None]
    ) -> Transcriber:
        release.wait(60)
        raise RuntimeError("held in 'loading' for the test, then abandoned")

    server = server_factory(transcriber_factory=held_factory, wait_ready=False, model="e2e_rnnt")
    try:
        assert httpx.get(f"{server.base_url}/health").json()["status"] == "loading"
        assert _listing(server) == [
            ("v3_e2e_rnnt", False),
            ("v3_ctc", False),
            ("v3_e2e_ctc", False),
            ("v3_rnnt", False),
        ]
    finally:
        release.set()
