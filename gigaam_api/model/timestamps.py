"""Word timestamps (docs/gigaam.md §7): emitted tokens with their encoder frames → Words in seconds.

Pure: grouping follows upstream (a `▁` piece or a `' '` char starts a new word; punctuation stays
attached); word text comes from the tokenizer's decode, so byte-fallback pieces become characters.
Each word keeps its token ids, separators before it included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gigaam_api.types import Word

WORD_BOUNDARY = "\u2581"
"""SentencePiece's marker of a piece that starts a word."""


class PieceTokenizer(Protocol):
    """The two tokenizer operations word grouping needs."""

    def piece(self, token_id: int) -> str: ...

    def decode(self, token_ids: Sequence[int]) -> str: ...


def frame_shift_s(duration_s: float, encoded_frames: int) -> float:
    """Seconds per encoder frame as upstream measures it: audio duration / encoded length."""
    return duration_s / encoded_frames if encoded_frames > 0 else 0.0


def words_from_tokens(
    token_ids: Sequence[int],
    frames: Sequence[int],
    tokenizer: PieceTokenizer,
    frame_shift: float,
) -> tuple[Word, ...]:
    """Group tokens into words; start = first frame × shift, end = (last frame + 1) × shift.

    Args:
        token_ids: emitted token ids in order.
        frames: the encoder frame of each token (same length as token_ids).
        tokenizer: gives each id's piece (a char, or a SentencePiece piece) and decodes ids to text.
        frame_shift: seconds per encoder frame (see frame_shift_s).

    Returns:
        The words in order; words whose decoded text is empty are dropped, their ids (like the
        space tokens) going to the next word. Ids after the last word are left out.
    """
    words: list[Word] = []
    carried: list[int] = []  # separators and empty words waiting for the next word
    word_ids: list[int] = []
    word_frames: list[int] = []

    def close() -> None:
        text = tokenizer.decode(word_ids).strip()
        if text:
            start, end = word_frames[0] * frame_shift, (word_frames[-1] + 1) * frame_shift
            words.append(Word(text, start, end, (*carried, *word_ids)))
            carried.clear()
        else:
            carried.extend(word_ids)
        word_ids.clear()
        word_frames.clear()

    for token_id, frame in zip(token_ids, frames, strict=True):
        piece = tokenizer.piece(token_id)
        if piece == " " or piece.startswith(WORD_BOUNDARY):
            if word_ids:
                close()
            if piece == " ":
                carried.append(token_id)
                continue
        word_ids.append(token_id)
        word_frames.append(frame)
    if word_ids:
        close()
    return tuple(words)
