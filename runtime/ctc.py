"""CTC greedy decoding: best token per frame, repeats merged, blanks dropped, word delimiter to space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CTCDecoder:
    """Decodes [frames, vocab] logits with a model's vocabulary (as `transformers`' Wav2Vec2CTCTokenizer does)."""

    vocabulary: Sequence[str]
    blank_id: int = 0
    word_delimiter: str = "|"
    dropped_tokens: Sequence[str] = field(default_factory=tuple)

    def __call__(self, logits: np.ndarray) -> str:
        return self.decode_ids(np.asarray(logits).argmax(axis=-1))

    def decode_ids(self, ids: np.ndarray) -> str:
        ids = np.asarray(ids).reshape(-1)
        if ids.size == 0:
            return ""
        keep = np.ones(ids.size, bool)
        keep[1:] = ids[1:] != ids[:-1]  # merge repeats first, so blank-separated doubles ("ll") survive
        dropped = set(self.dropped_tokens)
        pieces = []
        for token_id in ids[keep & (ids != self.blank_id)]:
            token = self.vocabulary[token_id] if token_id < len(self.vocabulary) else ""
            if token not in dropped:
                pieces.append(" " if token == self.word_delimiter else token)
        return " ".join("".join(pieces).split())
