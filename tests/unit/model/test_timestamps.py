"""Word grouping, times and token ids (docs/gigaam.md §7) with the real character and
SentencePiece tokenizers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest
import sentencepiece

from gigaam_api.model.config import DecodingConfig
from gigaam_api.model.timestamps import frame_shift_s, words_from_tokens
from gigaam_api.model.tokenizer import Tokenizer, load_tokenizer
from gigaam_api.types import Word
from testkit.checkpoints import RUSSIAN_CHARS, tokenizer_path_for

CHARS = Tokenizer(vocabulary=RUSSIAN_CHARS)
SHIFT = 0.04


def _char_ids(text: str) -> list[int]:
    return [RUSSIAN_CHARS.index(char) for char in text]


def _approx(words: Sequence[Word]) -> list[tuple[str, float, float]]:
    return [(w.text, round(w.start, 6), round(w.end, 6)) for w in words]


def test_frame_shift_is_duration_over_encoded_frames() -> None:
    assert frame_shift_s(11.29, 282) == pytest.approx(0.0400355, abs=1e-7)
    assert frame_shift_s(0.5, 0) == 0.0


@pytest.mark.parametrize(
    ("text", "frames", "expected"),
    [
        ("да нет", [0, 2, 5, 7, 8, 9], [("да", 0.0, 0.12), ("нет", 0.28, 0.4)]),
        (" да  ", [1, 2, 3, 4, 6], [("да", 0.08, 0.16)]),
        ("я", [10], [("я", 0.4, 0.44)]),
        ("   ", [0, 1, 2], []),
        ("", [], []),
    ],
)
def test_char_tokens_split_on_space_tokens(
    text: str, frames: list[int], expected: list[tuple[str, float, float]]
) -> None:
    words = words_from_tokens(_char_ids(text), frames, CHARS, SHIFT)
    assert _approx(words) == expected


def test_each_char_word_keeps_its_ids_with_the_spaces_before_it() -> None:
    words = words_from_tokens(_char_ids(" да  нет "), list(range(9)), CHARS, SHIFT)
    assert [w.tokens for w in words] == [tuple(_char_ids(" да")), tuple(_char_ids("  нет"))]


class _Pieces:
    """A SentencePiece-like double with a bare ▁ piece (id 0)."""

    pieces = ("\u2581", "\u2581при", "вет", ",", "мир")

    def piece(self, token_id: int) -> str:
        return self.pieces[token_id]

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(self.pieces[i] for i in token_ids).replace("\u2581", " ").lstrip()


def test_a_bare_boundary_piece_starts_the_next_word_at_its_frame() -> None:
    words = words_from_tokens([1, 2, 3, 0, 4], [0, 1, 2, 5, 7], _Pieces(), 0.1)
    assert _approx(words) == [("привет,", 0.0, 0.3), ("мир", 0.5, 0.8)]
    assert [w.tokens for w in words] == [(1, 2, 3), (0, 4)]  # the empty word's id moves on


@pytest.fixture(scope="module")
def byte_fallback_tokenizer(tiny_checkpoints: dict[str, Path]) -> tuple[Tokenizer, Path]:
    path = tokenizer_path_for(tiny_checkpoints["v3_e2e_rnnt"])
    return load_tokenizer(DecodingConfig(vocabulary=None), path), path


def test_sentencepiece_words_keep_punctuation_and_decode_byte_pieces(
    byte_fallback_tokenizer: tuple[Tokenizer, Path],
) -> None:
    tokenizer, path = byte_fallback_tokenizer
    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    text = "Ничьих не требуя похвал, счастлив Ψ-уж."
    ids = [int(i) for i in processor.encode(text)]
    assert any(tokenizer.piece(i).startswith("<0x") for i in ids)  # Ψ is byte-fallback
    frames = list(range(0, 2 * len(ids), 2))
    words = words_from_tokens(ids, frames, tokenizer, SHIFT)
    assert [w.text for w in words] == text.split()
    assert [token for w in words for token in w.tokens] == ids
    assert [processor.decode(list(w.tokens)) for w in words] == text.split()
    assert words[0].start == 0.0
    assert words[-1].end == pytest.approx((frames[-1] + 1) * SHIFT)
    for previous, current in itertools.pairwise(words):
        assert previous.start < previous.end <= current.start
