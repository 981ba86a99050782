import pytest

from gigaam_api.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(str(tmp_path))  # no stray .env


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


@pytest.mark.parametrize(("value", "threads"), [(None, None), ("", None), (" ", None), ("3", 3)])
def test_num_threads_unset_or_empty_means_the_cpu_quota(
    monkeypatch: pytest.MonkeyPatch, value: str | None, threads: int | None
) -> None:
    if value is not None:
        monkeypatch.setenv("NUM_THREADS", value)
    settings = load_settings()
    assert settings.num_threads == threads
    assert settings.engine == "auto"
