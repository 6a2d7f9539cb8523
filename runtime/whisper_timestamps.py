"""Whisper's timestamp tokens: the rules that keep them well formed while decoding, and where the next window
starts once a window is decoded, as transformers' long-form `generate` (and openai-whisper) do it.

A window of up to 30 s is decoded from the prompt without `<|notimestamps|>`; the model then writes segments
as `<|t0|> text <|t1|>`, time in 20 ms steps. A window that ends inside speech ends with an unfinished segment:
the next window starts at the last complete segment's end, and the unfinished words are decoded again there,
so no word is cut or lost at a window's edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TIME_PRECISION_S = 0.02  # one timestamp step
FRAMES_PER_TIMESTAMP = 2  # log-mel frames (10 ms) per timestamp step: 3000 frames, 1500 encoder positions


@dataclass(frozen=True)
class TimestampRules:
    """The ids that matter: the first timestamp token, end-of-text, and the latest timestamp allowed first."""

    timestamp_begin: int  # <|0.00|>; every id from here is a timestamp
    eos_id: int
    no_timestamps_id: int
    max_initial_timestamp_index: int | None = 50  # the first timestamp is at most 1.00 s

    def apply(self, scores: np.ndarray, generated: Sequence[Sequence[int]]) -> None:
        """Mask `scores` [batch, vocabulary] in place for the next token of each sequence (`generated`: its
        tokens after the prompt): timestamps come in pairs and never go back, the first token is a timestamp,
        and a timestamp is forced where all timestamps together are likelier than any text token."""
        scores[:, self.no_timestamps_id] = -np.inf
        for row, tokens in zip(scores, generated):
            last_was_timestamp = len(tokens) >= 1 and tokens[-1] >= self.timestamp_begin
            penultimate_was_timestamp = len(tokens) < 2 or tokens[-2] >= self.timestamp_begin
            if last_was_timestamp:
                if penultimate_was_timestamp:  # a pair just closed: text (or the end) comes next
                    row[self.timestamp_begin :] = -np.inf
                else:  # a segment's end: its pair, or the end of text
                    row[: self.eos_id] = -np.inf
            timestamps = [token for token in tokens if token >= self.timestamp_begin]
            if timestamps:
                floor = timestamps[-1] if last_was_timestamp and not penultimate_was_timestamp else timestamps[-1] + 1
                row[self.timestamp_begin : floor] = -np.inf
            if not tokens:
                row[: self.timestamp_begin] = -np.inf
                if self.max_initial_timestamp_index is not None:
                    row[self.timestamp_begin + self.max_initial_timestamp_index + 1 :] = -np.inf
        for row in scores:
            logprobs = row - _logsumexp(row)
            if _logsumexp(logprobs[self.timestamp_begin :]) > np.max(logprobs[: self.timestamp_begin]):
                row[: self.timestamp_begin] = -np.inf

    def segments(self, tokens: Sequence[int], window_frames: int) -> tuple[list[int], int]:
        """The text tokens of a decoded window's complete segments, and how many log-mel frames to move on.

        Ending in a lone timestamp means the speech ended in the window: all of it is kept and the next window
        starts after it. Ending inside a segment: the tokens after the last complete segment are dropped and the
        next window starts at that segment's end timestamp. Without a complete pair, all is kept."""
        is_timestamp = [token >= self.timestamp_begin for token in tokens]
        single_timestamp_ending = is_timestamp[-2:] == [False, True]
        pair_ends = [index + 1 for index in range(len(tokens) - 1) if is_timestamp[index] and is_timestamp[index + 1]]
        if pair_ends and not single_timestamp_ending:
            kept = tokens[: pair_ends[-1] + 1]
            advance = (tokens[pair_ends[-1] - 1] - self.timestamp_begin) * FRAMES_PER_TIMESTAMP
        else:
            kept, advance = tokens, window_frames
        return [token for token in kept if token < self.timestamp_begin], advance


def _logsumexp(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return -np.inf
    peak = finite.max()
    return float(peak + np.log(np.sum(np.exp(finite - peak))))
