"""Word error rate as the study and the Open ASR Leaderboard compute it: Whisper's English normaliser, then jiwer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

#: At or above this corpus WER (%) a model does not transcribe (random weights read about 100 %): its WER cannot judge
#: anything further, noisy audio or an int8 copy (engines/int8/budget.py keeps the same line for the INT8 budget).
UNJUDGEABLE_WER_PCT = 90.0
#: Whisper's English spelling map (openai-whisper's normalizers/english.json, MIT).
SPELLING_MAP = Path(__file__).resolve().parent / "english_spelling.json"


@dataclass(frozen=True)
class WordErrors:
    """Corpus WER in percent, with its parts (counts of words)."""

    wer: float
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int


@lru_cache(maxsize=1)
def _normalizer():
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer(json.loads(SPELLING_MAP.read_text(encoding="utf-8")))


def normalize(text: str) -> str:
    """Whisper's EnglishTextNormalizer (lower case, numbers and spellings unified, punctuation dropped)."""
    return _normalizer()(text)


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> WordErrors:
    """WER over all utterances together (not a mean of per-utterance rates), after normalising both sides.

    References that normalise to nothing are left out, with their hypotheses, as the leaderboard does.
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    pairs = [(normalize(ref), normalize(hyp)) for ref, hyp in zip(references, hypotheses)]
    pairs = [(ref, hyp) for ref, hyp in pairs if ref.strip()]
    if not pairs:
        raise ValueError("no reference has any words after normalisation")
    result = jiwer.process_words([ref for ref, _ in pairs], [hyp for _, hyp in pairs])
    words = result.hits + result.substitutions + result.deletions
    return WordErrors(
        wer=100.0 * (result.substitutions + result.deletions + result.insertions) / words,
        substitutions=result.substitutions, deletions=result.deletions, insertions=result.insertions,
        reference_words=words,
    )
