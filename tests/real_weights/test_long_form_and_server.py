"""The official weights through everything a user's request goes through, not just the engine.

- Upstream's long-form example (long_example.wav, docs/gigaam.md §10.4) through the whole pipeline
  (ffmpeg, Silero VAD, chunking, batches). Upstream cut it with pyannote and we cut with Silero,
  so the chunk boundaries differ and a word at a cut may come out differently: the whole text is
  held to a word error rate against upstream's, each chunk to upstream's limits, and two runs to
  giving the very same segments.
- example.wav (exact text and word timestamps, as at engine level) and long_example.wav through
  `gigaam-api serve` in its own process.
- QUANTIZE_INT8 through the server (whatever engine it picks): the int8 text stays close to fp32.

Needs the official weights and both example files, so not part of CI; fails (never skips) when a
file is missing, saying how to get it:
    .venv/bin/gigaam-api download v3_ctc v3_e2e_rnnt
    curl -o ~/.cache/gigaam-api/example.wav \
        https://cdn.chatwm.opensmodel.sberdevices.ru/GigaAM/example.wav
    curl -o ~/.cache/gigaam-api/long_example.wav \
        https://cdn.chatwm.opensmodel.sberdevices.ru/GigaAM/long_example.wav
(MODELS_DIR is read like every setting; EXAMPLE_WAV / LONG_EXAMPLE_WAV point elsewhere.) Run with
`.venv/bin/python -m pytest -m real_weights tests/real_weights` (or `make test-real`).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigaam_api.bootstrap import build_transcriber
from gigaam_api.settings import Settings, load_settings
from gigaam_api.types import Segment
from tests.fixtures.audio import wav_seconds
from tests.fixtures.metrics import scrape
from tests.fixtures.processes import WAIT_S, ServerProcess, start_server_process
from tests.fixtures.settings import isolated_settings
from tests.real_weights.test_official_models import EXPECTED_TEXT, EXPECTED_WORDS

pytestmark = pytest.mark.real_weights

MODELS = ("v3_ctc", "v3_e2e_rnnt")
LONG_TEXTS = {
    "v3_ctc": [
        "вечерня отошла давно но в кельях тихо и темно уже и сам игумен строгий свои молитвы "
        "прекратил и кости ветхие склонил перекрестясь на одр убогий кругом и сон и тишина но "
        "церкви дверь отворена",
        "трепещет луч лампады и тускло озаряет он и темную живопись икон и позлащенные оклады и "
        "раздается в тишине то тяжкий вздох то шепот важный и мрачно дремлет в вашине старинный "
        "свод",
        "глухой и влажный стоят за клиросом чернец и грешник неподвижны оба и шепот их как глаз "
        "из гроба и грешник бледен как мертвец монах несчастный полно перестань",
        "ужасна исповедь злодея заплачена тобою дань тому кто в злобе пламенея лукаво грешника "
        "блюдет и к вечной гибели ведет смирись опомнись время время раскаянье покров",
        "я разрешу тебя грехов сложи мучительное бремя",
    ],
    "v3_e2e_rnnt": [
        "Вечерня отошла давно, Но в кельях тихо и темно; Уже и сам игумен строгий Свои молитвы "
        "прекратил И кости ветхие склонил, Перекрестясь на одр убогий. Кругом и сон, и тишина; "
        "Но церкви дверь отворена.",
        "Трепещет луч лампады, И тускло озаряет он И тёмную живопись икон, и возглащённые "
        "оклады. И раздаётся в тишине То тяжкий вздох, то шёпот важный, И мрачно дремлет в "
        "тишине старинный свод.",
        "Глухой и влажный Стоят за клиросом чернец и грешник, Неподвижны оба. И шёпот их — Как "
        "глаз из гроба, И грешник бледен, как мертвец — Монах. Несчастный! Полно, перестань!",
        "Ужасна исповедь злодея, Заплачена тобою дань Тому, Кто в злобе пламенея Лукавого "
        "грешника блюдёт И к вечной гибели ведёт. Смирись, опомнись. Время, время. Раскаянье, "
        "покров",
        "Я разрешу тебя, грехов сложи мучительное бремя.",
    ],
}
UPSTREAM_LAST_END_S = 70.889
"""Where upstream's last segment of long_example.wav ends: the file is at least this long."""
LONG_FORM_WER = 0.05
"""Most a whole-file transcript may differ from upstream's (words at other cut points)."""
INT8_WER = 0.10
"""Most an int8 transcript may differ from the same model's fp32 one (a sanity bound)."""
TOLERANCE_S = 0.1


def models_dir() -> Path:
    return Path(load_settings().models_dir)


def required(path: Path, what: str) -> Path:
    if not path.is_file():
        pytest.fail(
            f"{what} {path} not found: see this module's docstring for the download commands "
            f"(files from {Settings.model_fields['weights_url'].default})."
        )
    return path


def example_wav() -> Path:
    path = Path(os.environ.get("EXAMPLE_WAV", str(models_dir() / "example.wav")))
    return required(path, "The upstream example audio")


def long_example_wav() -> Path:
    path = Path(os.environ.get("LONG_EXAMPLE_WAV", str(models_dir() / "long_example.wav")))
    return required(path, "The upstream long-form example audio")


def checkpoints(name: str) -> None:
    required(models_dir() / f"{name}.ckpt", "The official checkpoint")
    if "e2e" in name:
        required(models_dir() / f"{name}_tokenizer.model", "The tokenizer")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (ё kept: it is part of what a model says)."""
    return re.findall(r"[а-яёa-z0-9]+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference's word count."""
    ref, hyp = words(reference), words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1] / max(len(ref), 1)


def pipeline_segments(name: str, audio: Path) -> tuple[list[Segment], float]:
    settings = isolated_settings(
        model=name, models_dir=str(models_dir()), device="cpu", batch_size=2
    )
    transcriber = build_transcriber(settings, lambda _: None)
    run = transcriber.transcribe(audio, settings.transcribe_options(), threading.Event())
    try:
        return list(run), run.duration_s
    finally:
        run.close()


@pytest.mark.parametrize("name", MODELS)
def test_long_example_through_the_whole_pipeline(name: str) -> None:
    checkpoints(name)
    audio = long_example_wav()
    segments, duration_s = pipeline_segments(name, audio)
    assert (
        duration_s == pytest.approx(wav_seconds(audio), abs=0.01)
        and duration_s > UPSTREAM_LAST_END_S
    )
    assert len(segments) >= 4  # 71 s of speech: several chunks, in batches of two
    for segment in segments:  # upstream's limits on every chunk
        assert 0.2 <= segment.end - segment.start <= 30.0, segment
        assert 0.0 <= segment.start < segment.end <= duration_s
    assert all(a.end <= b.start for a, b in itertools.pairwise(segments))
    text = " ".join(segment.text for segment in segments)
    wer = word_error_rate(" ".join(LONG_TEXTS[name]), text)
    assert wer <= LONG_FORM_WER, f"WER {wer:.3f} against upstream: {text}"
    again, _ = pipeline_segments(name, audio)
    assert [(s.start, s.end, s.text) for s in again] == [(s.start, s.end, s.text) for s in segments]


def official_server(
    name: str, directory: Path, servers: list[ServerProcess], *, int8: bool = False
) -> ServerProcess:
    """`gigaam-api serve` with an official model from the real MODELS_DIR."""
    checkpoints(name)
    server = start_server_process(
        models_dir() / f"{name}.ckpt",
        directory,
        MODEL=name,
        MODELS_DIR=str(models_dir()),
        NUM_THREADS=str(os.cpu_count() or 1),
        QUANTIZE_INT8=str(int8).lower(),
    )
    servers.append(server)
    server.wait_ready()
    return server


def transcribe(server: ServerProcess, audio: Path, **data: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": (audio.name, audio.read_bytes(), "audio/wav")},
        data={"model": "whisper-1", "response_format": "verbose_json", **data},
        timeout=WAIT_S * 5,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize("name", MODELS)
def test_the_examples_through_the_http_server(
    name: str, tmp_path: Path, servers: list[ServerProcess]
) -> None:
    short, long = example_wav(), long_example_wav()
    server = official_server(name, tmp_path, servers)
    body = transcribe(server, short, **{"timestamp_granularities[]": ["word", "segment"]})
    assert body["text"] == EXPECTED_TEXT[name]
    if name in EXPECTED_WORDS:
        got = [(w["word"], w["start"], w["end"]) for w in body["words"]]
        assert [w[0] for w in got] == [w[0] for w in EXPECTED_WORDS[name]]
        for (text, start, end), (_, want_start, want_end) in zip(
            got, EXPECTED_WORDS[name], strict=True
        ):
            assert abs(start - want_start) <= TOLERANCE_S, text
            assert abs(end - want_end) <= TOLERANCE_S, text
    whole = transcribe(server, long)
    assert whole["duration"] == pytest.approx(wav_seconds(long), abs=0.01)
    wer = word_error_rate(" ".join(LONG_TEXTS[name]), whole["text"])
    assert wer <= LONG_FORM_WER, f"WER {wer:.3f} against upstream: {whole['text']}"


def test_int8_stays_close_to_fp32(tmp_path: Path, servers: list[ServerProcess]) -> None:
    short, long = example_wav(), long_example_wav()
    fp32 = official_server("v3_ctc", tmp_path / "fp32", servers)
    int8 = official_server("v3_ctc", tmp_path / "int8", servers, int8=True)
    for server, precision in ((fp32, "fp32"), (int8, "int8")):
        [info] = [
            labels for (metric, labels) in scrape(server.base_url) if metric == "gigaam_model_info"
        ]
        assert dict(info)["precision"] == precision
    for audio in (short, long):
        reference, quantized = transcribe(fp32, audio)["text"], transcribe(int8, audio)["text"]
        wer = word_error_rate(reference, quantized)
        assert wer <= INT8_WER, f"{audio.name}: int8 WER {wer:.3f} vs fp32: {quantized}"
