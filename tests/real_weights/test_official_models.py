"""Upstream's expected transcripts and word timestamps of example.wav (docs/gigaam.md §10).

Runs on both engines (torch, and ONNX Runtime fp32 exported on first use). Needs the official
weights, so not part of CI. Get the files into MODELS_DIR (read like every setting: environment,
.env, default ~/.cache/gigaam-api), then run
`.venv/bin/python -m pytest -m real_weights tests/real_weights` (or `make test-real`):
    .venv/bin/gigaam-api download v3_ctc v3_rnnt v3_e2e_ctc v3_e2e_rnnt
    curl -o ~/.cache/gigaam-api/example.wav \
        https://cdn.chatwm.opensmodel.sberdevices.ru/GigaAM/example.wav
"""

from __future__ import annotations

import functools
import os
import wave
from pathlib import Path

import numpy as np
import pytest

from gigaam_api.asr import load_model
from gigaam_api.engines.base import Waveform
from gigaam_api.engines.network import NetworkEngine
from gigaam_api.settings import load_settings
from gigaam_api.weights import OFFICIAL_WEIGHTS_URL

pytestmark = pytest.mark.real_weights

TOLERANCE_S = 0.1

PLAIN = (
    "ничьих не требуя похвал счастлив уж я надеждой сладкой что дева с трепетом любви посмотрит "
    "может быть украдкой на песни грешные мои у лукоморья дуб зеленый"
)
EXPECTED_TEXT = {
    "v3_ctc": PLAIN,
    "v3_rnnt": PLAIN,
    "v3_e2e_ctc": (
        "Ничьих, не требуя похвал, счастлив уж я надеждой сладкой, Что дева с трепетом любви "
        "посмотрит, может быть украдкой На песни грешные мои. У лукоморья дуб зелёный."
    ),
    "v3_e2e_rnnt": (
        "Ничьих не требуя похвал, Счастлив уж я надеждой сладкой, Что дева с трепетом любви "
        "Посмотрит, может быть, украдкой На песни грешные мои. У лукоморья дуб зелёный."
    ),
}
EXPECTED_WORDS = {
    "v3_ctc": [
        ("ничьих", 0.08, 0.44), ("не", 0.52, 0.64), ("требуя", 0.72, 1.0),
        ("похвал", 1.16, 1.52), ("счастлив", 1.76, 2.2), ("уж", 2.28, 2.4), ("я", 2.48, 2.52),
        ("надеждой", 2.72, 3.12), ("сладкой", 3.2, 3.6), ("что", 3.68, 3.8),
        ("дева", 3.92, 4.12), ("с", 4.2, 4.24), ("трепетом", 4.32, 4.72), ("любви", 4.84, 5.12),
        ("посмотрит", 5.4, 5.92), ("может", 6.04, 6.24), ("быть", 6.32, 6.48),
        ("украдкой", 6.6, 7.08), ("на", 7.16, 7.24), ("песни", 7.36, 7.64),
        ("грешные", 7.72, 8.12), ("мои", 8.28, 8.48), ("у", 9.28, 9.32),
        ("лукоморья", 9.44, 10.04), ("дуб", 10.16, 10.36), ("зеленый", 10.48, 10.92),
    ],
    "v3_e2e_rnnt": [
        ("Ничьих", 0.04, 0.4), ("не", 0.52, 0.56), ("требуя", 0.64, 0.96),
        ("похвал,", 1.08, 1.6), ("Счастлив", 1.72, 2.16), ("уж", 2.24, 2.4), ("я", 2.48, 2.52),
        ("надеждой", 2.64, 3.12), ("сладкой,", 3.16, 3.68), ("Что", 3.72, 3.76),
        ("дева", 3.88, 4.08), ("с", 4.16, 4.2), ("трепетом", 4.24, 4.72), ("любви", 4.8, 5.04),
        ("Посмотрит,", 5.32, 6.0), ("может", 6.08, 6.12), ("быть,", 6.28, 6.48),
        ("украдкой", 6.52, 6.96), ("На", 7.16, 7.2), ("песни", 7.28, 7.56),
        ("грешные", 7.68, 8.08), ("мои.", 8.24, 8.72), ("У", 9.2, 9.24),
        ("лукоморья", 9.36, 10.0), ("дуб", 10.12, 10.36), ("зелёный.", 10.48, 11.08),
    ],
}  # fmt: skip

HOW_TO_GET = (
    "Run: MODELS_DIR={dir} .venv/bin/gigaam-api download v3_ctc v3_rnnt v3_e2e_ctc v3_e2e_rnnt "
    "and curl -o {wav} {url}/example.wav (or set MODELS_DIR / EXAMPLE_WAV to where they are)."
)


def _models_dir() -> Path:
    return Path(load_settings().models_dir)


def _example_wav() -> Path:
    return Path(os.environ.get("EXAMPLE_WAV", str(_models_dir() / "example.wav")))


def _missing(what: str) -> str:
    hint = HOW_TO_GET.format(dir=_models_dir(), wav=_example_wav(), url=OFFICIAL_WEIGHTS_URL)
    return f"{what} not found. {hint}"


@functools.cache
def _example_audio() -> Waveform:
    path = _example_wav()
    if not path.is_file():
        pytest.fail(_missing(f"The upstream example audio {path}"))
    with wave.open(str(path), "rb") as reader:
        if (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) != (16000, 1, 2):
            pytest.fail(f"{path} must be 16 kHz mono 16-bit PCM, as upstream's example.wav is")
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2")
    return (samples.astype(np.float32) / 32768.0).astype(np.float32)


def _engine(name: str, engine: str) -> NetworkEngine:
    """The checkpoint on one engine (onnx: exported into MODELS_DIR/onnx/ on first use)."""
    checkpoint = _models_dir() / f"{name}.ckpt"
    if not checkpoint.is_file():
        pytest.fail(_missing(f"The official checkpoint {checkpoint}"))
    tokenizer = _models_dir() / f"{name}_tokenizer.model"
    if "e2e" in name and not tokenizer.is_file():
        pytest.fail(_missing(f"The tokenizer {tokenizer}"))
    return load_model(str(checkpoint), engine=engine, device="cpu")


@pytest.mark.parametrize("engine", ["torch", "onnx"])
@pytest.mark.parametrize("name", sorted(EXPECTED_TEXT))
def test_example_transcript_matches_upstream(name: str, engine: str) -> None:
    example_audio = _example_audio()
    model = _engine(name, engine)
    [result] = model.transcribe_batch([example_audio])
    assert result.text == EXPECTED_TEXT[name]
    # the same clip inside a padded batch (beside a longer one) gives the same text
    longer = np.concatenate([example_audio, example_audio[: 16000 * 2]])
    assert model.transcribe_batch([longer, example_audio])[1].text == EXPECTED_TEXT[name]
    if name in EXPECTED_WORDS:
        words = [(w.text, w.start, w.end) for w in result.words]
        assert [w[0] for w in words] == [w[0] for w in EXPECTED_WORDS[name]]
        for (text, start, end), (_, want_start, want_end) in zip(
            words, EXPECTED_WORDS[name], strict=True
        ):
            assert abs(start - want_start) <= TOLERANCE_S, text
            assert abs(end - want_end) <= TOLERANCE_S, text
