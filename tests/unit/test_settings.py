from pathlib import Path

import pytest
from pydantic import ValidationError

from gigaam_api.settings import Settings, SettingsError, load_settings
from tests.fixtures.settings import isolated_settings

pytestmark = pytest.mark.usefixtures("no_settings_env")


def test_defaults_match_the_documented_table() -> None:
    settings = load_settings()
    assert settings.model == "v3_ctc"
    assert settings.max_queue == 8
    assert settings.vad_threshold == 0.5
    assert settings.allowed_models == ["v3_ctc", "v3_e2e_ctc", "v3_rnnt", "v3_e2e_rnnt"]
    assert settings.model_aliases == ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"]
    assert settings.cors_allow_origins == []


def test_comma_separated_lists_are_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "app://obsidian.md, http://localhost:3000")
    assert load_settings().cors_allow_origins == ["app://obsidian.md", "http://localhost:3000"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_QUEUE", "0"),
        ("DEVICE", "tpu"),
        ("VAD_THRESHOLD", "1.5"),
        ("PORT", "http"),
        ("ENGINE", "tensorrt"),
        ("NUM_THREADS", "0"),
    ],
)
def test_invalid_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()


def test_vad_limits_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAD_MAX_DURATION", "10")
    with pytest.raises(SettingsError, match="VAD_MAX_DURATION"):
        load_settings()


def test_settings_describe_the_transcribe_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAD_THRESHOLD", "0.3")
    monkeypatch.setenv("BATCH_SIZE", "2")
    options = load_settings().transcribe_options()
    assert options.vad.threshold == 0.3
    assert options.batch_size == 2
    assert options.chunking.max_duration_s == 22.0


def test_data_directories_default_to_a_cache_in_the_home_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = load_settings()
    assert settings.models_dir == str(tmp_path / "home" / ".cache" / "gigaam-api")
    assert settings.cache_dir == str(tmp_path / "home" / ".cache" / "gigaam-api" / "results")
    monkeypatch.setenv("CACHE_DIR", "~/transcripts")
    assert load_settings().cache_dir == str(tmp_path / "home" / "transcripts")


@pytest.mark.parametrize("source", ["environment", ".env"])
def test_models_dir_expands_the_home_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, source: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if source == "environment":
        monkeypatch.setenv("MODELS_DIR", "~/gigaam")
    else:
        (tmp_path / ".env").write_text("MODELS_DIR=~/gigaam\n")
    assert load_settings().models_dir == str(tmp_path / "home" / "gigaam")


def test_models_dir_from_the_environment_wins_over_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("MODELS_DIR=/from/dotenv\n")
    assert load_settings().models_dir == "/from/dotenv"
    monkeypatch.setenv("MODELS_DIR", "/from/environment")
    assert load_settings().models_dir == "/from/environment"


def test_allowed_models_must_be_official_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_MODELS", "v3_ctc, whisper-large")
    with pytest.raises(SettingsError, match=r"ALLOWED_MODELS: .*whisper-large not official"):
        load_settings()
    monkeypatch.setenv("ALLOWED_MODELS", "")
    assert load_settings().allowed_models == []


@pytest.mark.parametrize(
    ("model", "served"),
    [("v3_ctc", "v3_ctc"), ("e2e_rnnt", "v3_e2e_rnnt"), ("/data/models/my-tune.ckpt", "my-tune")],
)
def test_model_is_served_under_its_official_name_or_file_stem(model: str, served: str) -> None:
    settings = load_settings(model=model)
    assert settings.served_model == served
    settings.check_served_model()  # all three are allowed by the defaults


@pytest.mark.parametrize("model", ["v2_ctc", "multilingual_ctc"])
def test_official_model_outside_allowed_models_is_refused(model: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(model=model).check_served_model()
    assert str(caught.value) == (
        f"MODEL={model} is not in ALLOWED_MODELS (v3_ctc, v3_e2e_ctc, v3_rnnt, v3_e2e_rnnt); "
        f"add {model} to ALLOWED_MODELS or set MODEL to one of them."
    )
    load_settings(model=model, allowed_models=[model]).check_served_model()


def test_a_local_checkpoint_needs_no_listing() -> None:
    load_settings(model="./models/v2_ctc.ckpt", allowed_models=[]).check_served_model()
    with pytest.raises(SettingsError, match=r"ALLOWED_MODELS \(empty\)"):
        load_settings(model="rnnt", allowed_models=[]).check_served_model()


def test_test_settings_ignore_every_variable_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = isolated_settings().model_dump()
    for name in Settings.model_fields:
        monkeypatch.setenv(name.upper(), "0.123-not-a-default")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # the environment is read, and every variable is set
    assert isolated_settings().model_dump() == defaults
    assert isolated_settings(batch_size=2).batch_size == 2


@pytest.mark.parametrize(("value", "threads"), [(None, None), ("", None), (" ", None), ("3", 3)])
def test_num_threads_unset_or_empty_means_the_cpu_quota(
    monkeypatch: pytest.MonkeyPatch, value: str | None, threads: int | None
) -> None:
    if value is not None:
        monkeypatch.setenv("NUM_THREADS", value)
    settings = load_settings()
    assert settings.num_threads == threads
    assert settings.engine == "auto"
