"""Tokenizer: character vocabularies and SentencePiece files (byte fallback, pieces, errors)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sentencepiece

from gigaam_api.errors import TokenizerError
from gigaam_api.model.config import DecodingConfig
from gigaam_api.model.tokenizer import load_tokenizer
from testkit.checkpoints import RUSSIAN_CHARS, tokenizer_path_for

CHARS = DecodingConfig(RUSSIAN_CHARS, vocab_size=33)
SENTENCEPIECE = DecodingConfig(None, vocab_size=384)


@pytest.fixture
def e2e_rnnt_tokenizer(tiny_checkpoints: dict[str, Path]) -> Path:
    return tokenizer_path_for(tiny_checkpoints["v3_e2e_rnnt"])


def test_characters_are_concatenated_as_is() -> None:
    tokenizer = load_tokenizer(CHARS, None)
    assert (tokenizer.vocab_size, tokenizer.is_sentencepiece) == (33, False)
    # ids: п=16 р=17 и=9 в=3 е=6 т=19, space=0 — leading/trailing spaces are kept
    assert tokenizer.decode([0, 16, 17, 9, 3, 6, 19, 0]) == " привет "
    assert tokenizer.decode([]) == ""
    assert [tokenizer.piece(i) for i in (0, 1, 32)] == [" ", "а", "я"]


def test_out_of_range_ids_are_rejected() -> None:
    tokenizer = load_tokenizer(CHARS, None)
    with pytest.raises(ValueError, match=r"\[33\] are outside the vocabulary of 33"):
        tokenizer.decode([1, 33])
    with pytest.raises(ValueError, match="outside"):
        tokenizer.piece(-1)


def test_sentencepiece_round_trip_and_pieces(e2e_rnnt_tokenizer: Path) -> None:
    tokenizer = load_tokenizer(SENTENCEPIECE, e2e_rnnt_tokenizer)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(e2e_rnnt_tokenizer))
    text = "Ничьих не требуя похвал, счастлив уж я надеждой сладкой."
    ids = reference.encode(text)

    assert (tokenizer.vocab_size, tokenizer.is_sentencepiece) == (384, True)
    assert tokenizer.decode(ids) == text
    pieces = [tokenizer.piece(i) for i in ids]
    assert pieces == [reference.id_to_piece(i) for i in ids]
    assert pieces[0].startswith("▁")  # kept: word grouping relies on it
    assert "".join(pieces).replace("▁", " ").strip() == text


def test_byte_fallback_pieces_decode_as_utf8(e2e_rnnt_tokenizer: Path) -> None:
    tokenizer = load_tokenizer(SENTENCEPIECE, e2e_rnnt_tokenizer)
    reference = sentencepiece.SentencePieceProcessor(model_file=str(e2e_rnnt_tokenizer))
    euro = [reference.piece_to_id(f"<0x{byte:02X}>") for byte in "€".encode()]
    assert [tokenizer.piece(i) for i in euro] == ["<0xE2>", "<0x82>", "<0xAC>"]
    assert tokenizer.decode(euro) == "€"
    unseen = "Φ€ 😀"  # never in the training text: only byte pieces can spell it
    assert tokenizer.decode(reference.encode(unseen)) == unseen


def test_missing_corrupt_and_mismatched_files(
    tmp_path: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    with pytest.raises(TokenizerError, match=r"no <model>_tokenizer\.model"):
        load_tokenizer(SENTENCEPIECE, None)
    with pytest.raises(TokenizerError, match="Cannot read"):
        load_tokenizer(SENTENCEPIECE, tmp_path / "absent.model")
    corrupt = tmp_path / "corrupt.model"
    corrupt.write_bytes(b"\xff\x00 not a protobuf")
    with pytest.raises(TokenizerError, match="not a valid SentencePiece model"):
        load_tokenizer(SENTENCEPIECE, corrupt)
    v1_rnnt = tokenizer_path_for(tiny_checkpoints["v1_rnnt"])  # 128 pieces, head wants 384
    with pytest.raises(TokenizerError, match="has 128 pieces but the model's head expects 384"):
        load_tokenizer(SENTENCEPIECE, v1_rnnt)
