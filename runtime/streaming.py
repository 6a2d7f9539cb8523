"""Streaming recognition: audio in chunks of any size, a partial hypothesis while it arrives, final text with
segment timestamps at the end, at a cost per audio second that does not grow with the stream's length.

    with load_recognizer("engines/whisper-tiny.en-int8.json") as recognizer:
        stream = recognizer.stream()
        for chunk in microphone():          # float32 at 16 kHz, or `stream.accept(chunk, sample_rate=48_000)`
            stream.accept(chunk)
            print(stream.partial())         # committed text + the open segment's current hypothesis
        print(stream.finish().text)         # Transcript: text, segments (start, end, text), duration

Every stream runs Silero VAD (vad.py). Whisper-style models (`SegmentedStream`) decode each speech segment once,
when the VAD closes it or when it reaches `max_segment_s` (cut at its quietest frame); a partial re-decodes only
the open segment, at most every `partial_interval_s` of audio. CTC models (ctc_stream.py) decode fixed chunks
with left and right context, skipping chunks without speech. Committed text is never rewritten; audio before
the open segment (or chunk context) is dropped. Design and trade-offs: docs/streaming.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from asr_engines.audio import SAMPLE_RATE, AudioError, StreamResampler, as_float_mono
from asr_engines.runtime.vad import FRAME, SpeechCut, SpeechEnd, SpeechSegmenter, SpeechStart, VadOptions


@dataclass(frozen=True)
class Segment:
    start: float  # seconds since the stream began
    end: float
    text: str


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: tuple[Segment, ...]
    duration: float  # seconds of audio the stream took


@dataclass(frozen=True)
class StreamOptions:
    """How a stream segments and when it decodes. Latency/accuracy trade-offs: docs/streaming.md."""

    vad: VadOptions = field(default_factory=VadOptions)
    max_segment_s: float = 20.0  # an open segment this long is closed (Whisper reads at most 30 s)
    partial_interval_s: float = 0.5  # a partial decodes again only after this much new audio
    chunk_s: float = 4.0  # CTC: audio decoded per chunk ...
    left_context_s: float = 2.0  # ... with this much before it ...
    right_context_s: float = 1.0  # ... and after it (so a final chunk waits this long)

    def __post_init__(self):
        if not 1.0 <= self.max_segment_s <= 28.0:
            raise ValueError(f"max_segment_s must be within 1..28 s (Whisper reads 30 s at most), not {self.max_segment_s}")
        if self.chunk_s <= 0 or self.left_context_s < 0 or self.right_context_s < 0.04 or self.partial_interval_s < 0:
            raise ValueError("CTC chunks need chunk_s > 0, left context >= 0, right context >= 0.04 s; partial interval >= 0")


class Stream(Protocol):
    """One live audio stream of one recognizer; not safe to share between threads."""

    duration_s: float

    def accept(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None: ...

    def committed(self) -> str:
        """Text that is final so far (it only ever grows)."""
        ...

    def partial(self) -> str:
        """Committed text plus the current hypothesis of what is still open."""
        ...

    def endpoint(self, trailing_silence_s: float) -> bool:
        """Speech was heard and has been followed by this much silence."""
        ...

    def finish(self) -> Transcript: ...


class AudioWindow:
    """The recent audio of a stream, addressed by absolute sample index; older audio is dropped."""

    def __init__(self):
        self._audio = np.zeros(0, np.float32)
        self.start = 0  # absolute index of self._audio[0]

    @property
    def end(self) -> int:
        return self.start + len(self._audio)

    def append(self, samples: np.ndarray) -> None:
        self._audio = np.concatenate([self._audio, samples])

    def slice(self, start: int, end: int) -> np.ndarray:
        return self._audio[max(start, self.start) - self.start : max(end, self.start) - self.start]

    def drop_before(self, sample: int) -> None:
        new_start = min(sample, self.end)
        if new_start > self.start:
            self._audio = self._audio[new_start - self.start :].copy()
            self.start = new_start


class StreamBase:
    """Intake (rate, sample type, channels), the VAD and the window; subclasses decode."""

    def __init__(self, options: StreamOptions):
        self.options = options
        self.segmenter = SpeechSegmenter(options.vad, int(options.max_segment_s * SAMPLE_RATE))
        self.window = AudioWindow()
        self.segments: list[Segment] = []
        self._resampler: StreamResampler | None = None
        self._finished = False

    @property
    def duration_s(self) -> float:
        return self.window.end / SAMPLE_RATE

    def accept(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        if self._finished:
            raise AudioError("this stream is finished; start a new one")
        if self._resampler is None:
            self._resampler = StreamResampler(sample_rate)
        elif sample_rate != self._resampler.rate:
            raise AudioError(f"a stream keeps one sample rate: it began at {self._resampler.rate} Hz, not {sample_rate} Hz")
        self._take(self._resampler(as_float_mono(samples)))

    def _take(self, samples: np.ndarray) -> None:
        if not len(samples):
            return
        self.window.append(samples)
        for boundary in self.segmenter.accept(samples):
            self._boundary(boundary)
        self._after_audio()

    def committed(self) -> str:
        return " ".join(segment.text for segment in self.segments)

    def endpoint(self, trailing_silence_s: float) -> bool:
        # independent of the silence that closes a segment: an utterance can end sooner than a segment would
        return self.segmenter.heard_speech and self.segmenter.silence_s() >= trailing_silence_s

    def finish(self) -> Transcript:
        if not self._finished:
            if self._resampler is not None:
                self._take(self._resampler(np.zeros(0, np.float32), last=True))
            self._finished = True
            self._finish()
        text = " ".join(segment.text for segment in self.segments)
        return Transcript(text, tuple(self.segments), self.duration_s)

    def _commit(self, start: int, end: int, text: str) -> None:
        if text.strip():
            self.segments.append(Segment(round(start / SAMPLE_RATE, 3), round(end / SAMPLE_RATE, 3), text))

    def _boundary(self, boundary: SpeechStart | SpeechCut | SpeechEnd) -> None: ...

    def _after_audio(self) -> None: ...

    def _finish(self) -> None: ...


class SegmentedStream(StreamBase):
    """For models that read a whole utterance (Whisper): each VAD segment decoded once by `transcribe`."""

    def __init__(self, transcribe: Callable[[np.ndarray], str], options: StreamOptions):
        super().__init__(options)
        self._transcribe = transcribe
        self._open: int | None = None  # start of the open segment
        self._partial, self._partial_at = "", -1
        self._ready: tuple[int, int, str] | None = None  # (start, end, text): the open segment decoded as if it ended

    def _boundary(self, boundary: SpeechStart | SpeechCut | SpeechEnd) -> None:
        if isinstance(boundary, SpeechStart):
            self._open = boundary.sample
            return
        start, self._open, self._partial = self._open, boundary.sample if isinstance(boundary, SpeechCut) else None, ""
        ready, self._ready = self._ready, None
        if start is not None and getattr(boundary, "is_speech", True) and boundary.sample - start >= FRAME:
            if ready and ready[:2] == (start, boundary.sample):
                text = ready[2]
            else:
                text = self._transcribe(self.window.slice(start, boundary.sample))
            self._commit(start, boundary.sample, text)
        self._drop_old_audio()

    def _drop_old_audio(self) -> None:
        pad = int(self.options.vad.speech_pad_s * SAMPLE_RATE)
        self.window.drop_before(self._open if self._open is not None else self.segmenter.samples - pad - FRAME)

    def _after_audio(self) -> None:
        """Once the speech has paused for the padding, decode the open segment as if it ended there: if it does
        (the VAD's silence, audio-stop, an endpoint), that text is final at once, not one decode later."""
        if self._open is not None and self.segmenter.open_is_speech():
            end = self.segmenter.last_speech_end + int(self.options.vad.speech_pad_s * SAMPLE_RATE)
            if end <= self.segmenter.samples and (self._ready is None or self._ready[:2] != (self._open, end)):
                self._ready = (self._open, end, self._transcribe(self.window.slice(self._open, end)))
        self._drop_old_audio()

    def partial(self) -> str:
        if self._open is not None and self.window.end - self._partial_at >= self.options.partial_interval_s * SAMPLE_RATE:
            self._partial, self._partial_at = self._transcribe(self.window.slice(self._open, self.window.end)), self.window.end
        return " ".join(filter(None, (self.committed(), self._partial if self._open is not None else "")))

    def _finish(self) -> None:
        if self._open is not None:
            self._boundary(self.segmenter.close())
