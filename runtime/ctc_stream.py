"""A CTC model read live: fixed chunks of `chunk_s` decoded with `left_context_s` before and `right_context_s`
after them (as chunking.py reads a long file, smaller), each chunk's frames final once its right context has
arrived. A chunk the VAD heard no speech in (padding included) is not run: its frames are blank.

Final frame ids are kept only back to the last pause (`PAUSE_S` of blanks and word delimiters); at a pause they
become a segment of text with the times of its first and last letters. A run with no pause is cut at a blank
after `MAX_UNCUT_S`, so memory stays bounded however long the stream.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.families import CTC_FRAME_HOP
from asr_engines.runtime.ctc import CTCDecoder
from asr_engines.runtime.streaming import StreamBase, StreamOptions
from asr_engines.runtime.vad import SpeechCut, SpeechEnd, SpeechStart

PAUSE_S = 0.3
MAX_UNCUT_S = 30.0
FIRST_FRAME = 400  # samples the feature encoder needs for one frame (25 ms)


class ChunkedCTCStream(StreamBase):
    def __init__(self, logits_of: Callable[[np.ndarray], np.ndarray], decoder: CTCDecoder, options: StreamOptions):
        super().__init__(options)
        self._logits_of, self._decoder = logits_of, decoder
        self._hop = CTC_FRAME_HOP
        self._step, self._left, self._right = (self._samples(seconds) for seconds in
                                               (options.chunk_s, options.left_context_s, options.right_context_s))
        self._pad = int(options.vad.speech_pad_s * SAMPLE_RATE)
        self._silent = {decoder.blank_id, *(index for index, token in enumerate(decoder.vocabulary) if token == decoder.word_delimiter)}
        self._done = 0  # samples whose frames are final
        self._ids = np.zeros(0, np.int64)  # final frame ids since the last cut ...
        self._ids_from = 0  # ... the first of them this frame of the stream
        self._speech: list[tuple[int, int]] = []  # VAD segments not yet behind the final frames
        self._partial, self._partial_at = "", -1

    def _samples(self, seconds: float) -> int:
        """`seconds` in whole frames (chunk edges fall on frame edges), at least one."""
        return max(1, round(seconds * SAMPLE_RATE / self._hop)) * self._hop

    def _boundary(self, boundary: SpeechStart | SpeechCut | SpeechEnd) -> None:
        if isinstance(boundary, SpeechStart):
            self._speech.append((boundary.sample, -1))
        elif isinstance(boundary, SpeechEnd):
            start, _ = self._speech.pop()
            self._speech.append((start, boundary.sample))

    def _has_speech(self, start: int, end: int) -> bool:
        return any(s < end + self._pad and (e < 0 or e > start - self._pad) for s, e in self._speech)

    def _after_audio(self) -> None:
        while self.window.end >= self._done + self._step + self._right:
            self._advance(self._done + self._step)

    def _chunk_ids(self, end: int, with_right: bool) -> np.ndarray:
        """Frame ids for samples [done, end), read with left context (and right context when `with_right`)."""
        frames = (end - self._done) // self._hop
        if not self._has_speech(self._done, end):
            return np.full(frames, self._decoder.blank_id, np.int64)
        start = max(0, self._done - self._left)
        logits = self._logits_of(self.window.slice(start, end + (self._right if with_right else 0)))
        first = (self._done - start) // self._hop
        return logits[first : first + frames].argmax(axis=-1) if with_right else logits[first:].argmax(axis=-1)

    def _advance(self, end: int, last: bool = False) -> None:
        self._ids = np.concatenate([self._ids, self._chunk_ids(end, with_right=not last)])
        self._done, self._partial, self._partial_at = end, "", -1
        self._speech = [(s, e) for s, e in self._speech if e < 0 or e + self._pad > end]
        self.window.drop_before(end - self._left)
        self._cut(last)

    def _cut(self, last: bool) -> None:
        """Turn final ids up to the last pause into a segment (all of them at the end of the stream)."""
        silent = np.isin(self._ids, list(self._silent))
        pause = int(PAUSE_S * SAMPLE_RATE / self._hop)
        cut = len(self._ids) if last else _last_pause(silent, pause)
        if cut is None and len(self._ids) * self._hop > MAX_UNCUT_S * SAMPLE_RATE:
            blanks = np.flatnonzero(self._ids == self._decoder.blank_id)
            cut = int(blanks[-1]) + 1 if len(blanks) else len(self._ids)
        if not cut:
            return
        spoken = np.flatnonzero(~silent[:cut])
        if len(spoken):
            first, after = self._ids_from + spoken[0], self._ids_from + spoken[-1] + 1
            self._commit(first * self._hop, after * self._hop, self._decoder.decode_ids(self._ids[:cut]))
        self._ids, self._ids_from = self._ids[cut:], self._ids_from + cut

    def partial(self) -> str:
        if self.window.end - self._partial_at >= self.options.partial_interval_s * SAMPLE_RATE:
            tail = self._chunk_ids(self.window.end, with_right=False) if self.window.end - self._done >= FIRST_FRAME else []
            self._partial = self._decoder.decode_ids(np.concatenate([self._ids, tail]))
            self._partial_at = self.window.end
        return " ".join(filter(None, (self.committed(), self._partial)))

    def _finish(self) -> None:
        if self.segmenter.in_speech:
            self._boundary(self.segmenter.close())
        end = self.window.end
        if end - self._done >= FIRST_FRAME:
            self._advance(end, last=True)
        else:
            self._cut(last=True)


def _last_pause(silent: np.ndarray, length: int) -> int | None:
    """The index just past the last run of at least `length` silent frames that follows speech; None if none."""
    if len(silent) < length or silent.all():
        return None
    run = np.convolve(silent.astype(np.int32), np.ones(length, np.int32), "valid") == length
    ends = np.flatnonzero(run) + length
    spoken = np.flatnonzero(~silent)
    ends = ends[ends > spoken[0]]
    return int(ends[-1]) if len(ends) else None
