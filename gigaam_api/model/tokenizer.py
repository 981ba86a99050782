"""Token ids to text: a character vocabulary from the cfg, or a SentencePiece model file.

Blank is never a token here (it is num_classes − 1, one past the vocabulary); callers pass only
emitted ids. Knows nothing of decoding algorithms or timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sentencepiece

from gigaam_api.errors import TokenizerError
from gigaam_api.model.config import DecodingConfig


class Tokenizer:
    """Maps token ids to text (decode) and to the per-token strings words are grouped by (piece)."""

    def __init__(
        self,
        vocabulary: Sequence[str] | None = None,
        processor: sentencepiece.SentencePieceProcessor | None = None,
    ) -> None:
        if processor is not None:
            self._pieces = tuple(
                str(processor.id_to_piece(i)) for i in range(processor.get_piece_size())
            )
        elif vocabulary is not None:
            self._pieces = tuple(vocabulary)
        else:
            raise ValueError("a Tokenizer needs a vocabulary or a SentencePiece processor")
        self._processor = processor

    @property
    def is_sentencepiece(self) -> bool:
        return self._processor is not None

    @property
    def vocab_size(self) -> int:
        """Number of tokens, blank excluded."""
        return len(self._pieces)

    def decode(self, ids: Sequence[int]) -> str:
        """Characters concatenated as they are; SentencePiece pieces detokenised (▁ → space,
        byte-fallback pieces joined into UTF-8)."""
        self._check(ids)
        if self._processor is not None:
            return str(self._processor.decode([int(i) for i in ids]))
        return "".join(self._pieces[i] for i in ids)

    def piece(self, token_id: int) -> str:
        """The token's own string: the character, or the piece with its leading ▁ kept."""
        self._check((token_id,))
        return self._pieces[token_id]

    def _check(self, ids: Sequence[int]) -> None:
        bad = [i for i in ids if not 0 <= i < len(self._pieces)]
        if bad:
            raise ValueError(f"token ids {bad[:5]} are outside the vocabulary of {self.vocab_size}")


def load_tokenizer(decoding: DecodingConfig, tokenizer_path: Path | None) -> Tokenizer:
    """The model's tokenizer; TokenizerError when a needed SentencePiece file is missing or bad."""
    if decoding.vocabulary is not None:
        return Tokenizer(vocabulary=decoding.vocabulary)
    if tokenizer_path is None:
        raise TokenizerError(
            "This model uses a SentencePiece tokenizer, but no <model>_tokenizer.model file was "
            "found beside the checkpoint."
        )
    try:
        model = tokenizer_path.read_bytes()
    except OSError as exc:
        raise TokenizerError(f"Cannot read the tokenizer {tokenizer_path}: {exc}") from exc
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model)
    except (RuntimeError, OSError, TypeError) as exc:
        raise TokenizerError(
            f"{tokenizer_path} is not a valid SentencePiece model (corrupt download?): {exc}"
        ) from exc
    pieces = int(processor.get_piece_size())
    if decoding.vocab_size is not None and pieces != decoding.vocab_size:
        raise TokenizerError(
            f"The tokenizer {tokenizer_path} has {pieces} pieces but the model's head expects "
            f"{decoding.vocab_size} (+ blank); it belongs to another model."
        )
    return Tokenizer(processor=processor)
