"""Engines plus their front end and decoder: audio in, text out. One recognizer class per model family."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from asr_engines.audio import SAMPLE_RATE, Recording, Samples, checked_samples
from asr_engines.families import CTC, CTC_MIN_SAMPLES
from asr_engines.features import front_end_from_config
from asr_engines.manifest import EngineManifest, load_manifest
from asr_engines.runtime.backends import load_engine
from asr_engines.runtime.chunking import chunked_logits
from asr_engines.runtime.ctc import CTCDecoder
from asr_engines.runtime.ctc_stream import ChunkedCTCStream
from asr_engines.runtime.engine import ClosedOnExit, Engine, EngineError, InFlight
from asr_engines.runtime.moonshine import MoonshineRecognizer
from asr_engines.runtime.streaming import Stream, StreamOptions
from asr_engines.runtime.whisper import PRECISION_DEFAULT, TrimMargin, WhisperRecognizer
from asr_engines.variants import Precision, Variant


class Recognizer(Protocol):
    """Transcribes 16 kHz mono float32 audio. `name`, `backend`, `device`, `precision`, `variant` describe it."""

    name: str
    backend: str
    device: str
    precision: Precision
    variant: Variant
    manifest: EngineManifest

    def transcribe(self, audio: np.ndarray | Recording, sample_rate: int = SAMPLE_RATE) -> str:
        """Text of one recording; audio at another rate, or not mono, is refused (AudioError). A `Recording` (a file
        decoded to disk) is read a window at a time: memory bounded however long it is."""
        ...

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[str]:
        """Several utterances at once where the model allows it."""
        ...

    def stream(self, options: StreamOptions | None = None) -> Stream:
        """A live stream: `accept` chunks, `partial()`, `finish()` (streaming.py)."""
        ...

    def decoding(self) -> dict:
        """How it decodes beyond what its manifest says, and what that did so far (for result rows)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Recognizer: ...

    def __exit__(self, *exc_info) -> None: ...


class CTCRecognizer(ClosedOnExit):
    """A wav2vec2-family engine: normalised samples -> logits -> greedy CTC text. A recording longer than the
    manifest's chunk (or than a TensorRT plan's profile takes) is read in overlapping chunks (chunking.py)."""

    def __init__(self, engine: Engine, manifest: EngineManifest):
        self.engine = engine
        self.manifest = manifest
        self.name = manifest.engine
        self.backend, self.device = engine.backend, engine.device
        self.precision, self.variant = manifest.precision, manifest.variant
        self._front_end = front_end_from_config(manifest.front_end)
        decoder = dict(manifest.decoder)
        decoder.pop("kind")
        self._decode = CTCDecoder(**decoder)
        self._logits_name = engine.outputs[0].name
        classes = engine.outputs[0].shape[-1]
        if isinstance(classes, int) and classes > 0 and classes != len(self._decode.vocabulary):
            raise EngineError(f"{manifest.engine}: the model gives {classes} classes but its manifest's vocabulary has "
                              f"{len(self._decode.vocabulary)}; rebuild the engine with `asr-engines build`")
        self._in_flight = InFlight(self.name)
        chunking = manifest.chunking or CTC.chunking
        profile_max = max((shapes["max"][-1] for build in manifest.build.values()
                           for shapes in (build.get("profile") or {}).values()), default=None)
        self.chunk = min(int(chunking["chunk_s"] * SAMPLE_RATE), profile_max or np.inf)
        self.stride = min(int(chunking["stride_s"] * SAMPLE_RATE), self.chunk // 4)

    def logits(self, audio: Samples) -> np.ndarray:
        """[frames, vocabulary] for a recording of any length: one run up to a chunk, chunks past it."""
        if len(audio) <= self.chunk:
            return self._run(audio[:])
        return chunked_logits(audio, self._run, self.chunk, self.stride)

    def _run(self, samples: np.ndarray) -> np.ndarray:
        if len(samples) < CTC_MIN_SAMPLES:  # shorter than one output frame's receptive field: no frames, no text
            return np.zeros((0, len(self._decode.vocabulary)), np.float32)
        with self._in_flight.call():
            return self.engine.run(self._front_end(samples))[self._logits_name][0]

    def transcribe(self, audio: np.ndarray | Recording, sample_rate: int = SAMPLE_RATE) -> str:
        audio = checked_samples(audio, sample_rate)
        return self._decode(self.logits(audio))

    def stream(self, options: StreamOptions | None = None) -> Stream:
        return ChunkedCTCStream(self.logits, self._decode, options or StreamOptions())

    def decoding(self) -> dict:
        return {"chunk_s": self.chunk / SAMPLE_RATE, "stride_s": self.stride / SAMPLE_RATE}

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[str]:
        # One at a time on purpose: group-norm wav2vec2 models change their output when fed padded batches.
        return [self.transcribe(audio) for audio in audios]

    def close(self) -> None:
        """Wait for transcriptions in flight, then free the engine; transcribing after it raises EngineError."""
        if self._in_flight.close():
            self.engine.close()


@dataclass(frozen=True)
class RecognizerOptions:
    """How a recognizer decodes beyond what its manifest says: Whisper's encoder trim margin (runtime/whisper.py);
    the language (`fr`) and task (`transcribe`, `translate`) of a multilingual Whisper (runtime/whisper_prompt.py)."""

    trim_margin_s: TrimMargin = PRECISION_DEFAULT
    language: str | None = None
    task: str | None = None


def _reads_audio_as_it_is(manifest: EngineManifest, options: RecognizerOptions) -> None:
    """Refuse, in one line, options only multilingual Whisper takes, on a family that transcribes English as it hears it."""
    family = {"ctc": "CTC"}.get(manifest.family, manifest.family.capitalize())
    if options.trim_margin_s not in (None, PRECISION_DEFAULT):
        raise ValueError(f"{manifest.engine}: a trim margin applies to Whisper's fixed window; {family} models read the audio as it is")
    if (options.language or "en").lower() not in ("en", "english") or options.task not in (None, "transcribe"):
        raise ValueError(f"{manifest.engine}: an English-only {family} model; it takes no other language or task")


def _ctc(engines: dict[str, Engine], manifest: EngineManifest, options: RecognizerOptions) -> Recognizer:
    _reads_audio_as_it_is(manifest, options)
    return CTCRecognizer(engines["model"], manifest)


def _whisper(engines: dict[str, Engine], manifest: EngineManifest, options: RecognizerOptions) -> Recognizer:
    return WhisperRecognizer(engines["encoder"], engines["decoder"], engines["decoder_with_past"], manifest,
                             options.trim_margin_s, options.language, options.task)


def _moonshine(engines: dict[str, Engine], manifest: EngineManifest, options: RecognizerOptions) -> Recognizer:
    _reads_audio_as_it_is(manifest, options)
    return MoonshineRecognizer(engines["encoder"], engines["decoder"], engines["decoder_with_past"], manifest)


#: model family -> how its engines become a recognizer. A new family is a new line here.
RECOGNIZERS = {"ctc": _ctc, "whisper": _whisper, "moonshine": _moonshine}


def load_recognizer(path: str | Path, threads: int | None = None, trim_margin_s: TrimMargin = PRECISION_DEFAULT,
                    language: str | None = None, task: str | None = None) -> Recognizer:
    """Load the engine whose manifest `path` is (or names), ready to transcribe; use it in a `with` block, or
    `close()` it. `trim_margin_s`: Whisper on ONNX Runtime runs its encoder on the audio plus this margin instead
    of 30 s; None: the whole window; by default the precision's measured choice (runtime/whisper.py). `language`,
    `task`: a multilingual Whisper's (no language: detected per recording); English-only models take `en` or none."""
    options = RecognizerOptions(trim_margin_s, language, task)
    manifest = load_manifest(path)
    manifest.verify_files()
    if manifest.family not in RECOGNIZERS:
        raise ValueError(f"{path}: no recognizer for model family {manifest.family!r}")
    engines = {graph: load_engine(manifest.graph_path(graph), variant=manifest.graph_variant(graph), threads=threads,
                                  takes_turns=len(manifest.files) > 1)
               for graph in manifest.files}
    try:
        return RECOGNIZERS[manifest.family](engines, manifest, options)
    except Exception:  # options it refuses: the engines it loaded are freed, not left to the garbage collector
        for engine in engines.values():
            engine.close()
        raise
