"""Engines plus their front end and decoder: audio in, text out. One recognizer class per model family."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from common.audio import SAMPLE_RATE, check_rate
from common.features import front_end_from_config
from common.variants import Precision, Variant
from engines.assets import CTC_CHUNK_S, CTC_STRIDE_S
from engines.sidecar import read_sidecar, verify_files
from runtime.chunking import chunked_logits
from runtime.ctc import CTCDecoder
from runtime.engine import Engine, load_engine
from runtime.whisper import PRECISION_DEFAULT, TrimMargin, WhisperRecognizer


class Recognizer(Protocol):
    """Transcribes 16 kHz mono float32 audio. `name`, `backend`, `device`, `precision`, `variant` describe it."""

    name: str
    backend: str
    device: str
    precision: Precision
    variant: Variant
    sidecar: dict

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        """Text of one utterance; audio at another rate, or not mono, is refused (AudioError)."""
        ...

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[str]:
        """Several utterances at once where the model allows it."""
        ...

    def decoding(self) -> dict:
        """How it decodes beyond what its sidecar says, and what that did so far (for result rows)."""
        ...

    def close(self) -> None: ...


class CTCRecognizer:
    """A wav2vec2-family engine: normalised samples -> logits -> greedy CTC text. A recording longer than the
    sidecar's chunk (or than a TensorRT plan's profile takes) is read in overlapping chunks (chunking.py)."""

    def __init__(self, engine: Engine, sidecar: dict):
        self.engine = engine
        self.sidecar = sidecar
        self.name = sidecar["engine"]
        self.backend, self.device = engine.backend, engine.device
        self.precision, self.variant = Precision(sidecar["precision"]), Variant(sidecar["variant"])
        self._front_end = front_end_from_config(sidecar["front_end"])
        decoder = dict(sidecar["decoder"])
        decoder.pop("kind")
        self._decode = CTCDecoder(**decoder)
        self._logits_name = engine.outputs[0].name
        chunking = sidecar.get("chunking") or {"chunk_s": CTC_CHUNK_S, "stride_s": CTC_STRIDE_S}
        profile_max = max((shapes["max"][-1] for build in sidecar["build"].values()
                           for shapes in (build.get("profile") or {}).values()), default=None)
        self.chunk = min(int(chunking["chunk_s"] * SAMPLE_RATE), profile_max or np.inf)
        self.stride = min(int(chunking["stride_s"] * SAMPLE_RATE), self.chunk // 4)

    def logits(self, audio: np.ndarray) -> np.ndarray:
        """[frames, vocabulary] for a recording of any length: one run up to a chunk, chunks past it."""
        if len(audio) <= self.chunk:
            return self._run(audio)
        return chunked_logits(audio, self._run, self.chunk, self.stride)

    def _run(self, samples: np.ndarray) -> np.ndarray:
        return self.engine.run(self._front_end(samples))[self._logits_name][0]

    def transcribe(self, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
        check_rate(audio, sample_rate)
        return self._decode(self.logits(audio))

    def decoding(self) -> dict:
        return {"chunk_s": self.chunk / SAMPLE_RATE, "stride_s": self.stride / SAMPLE_RATE}

    def transcribe_batch(self, audios: list[np.ndarray]) -> list[str]:
        # One at a time on purpose: group-norm wav2vec2 models change their output when fed padded batches.
        return [self.transcribe(audio) for audio in audios]

    def close(self) -> None:
        self.engine.close()


def _ctc(engines: dict[str, Engine], sidecar: dict, trim_margin_s: TrimMargin) -> Recognizer:
    if trim_margin_s not in (None, PRECISION_DEFAULT):
        raise ValueError(f"{sidecar['engine']}: a trim margin applies to Whisper's fixed window; CTC models read the audio as it is")
    return CTCRecognizer(engines["model"], sidecar)


def _whisper(engines: dict[str, Engine], sidecar: dict, trim_margin_s: TrimMargin) -> Recognizer:
    return WhisperRecognizer(engines["encoder"], engines["decoder"], engines["decoder_with_past"], sidecar, trim_margin_s)


#: model family -> how its engines become a recognizer. A new family is a new line here.
RECOGNIZERS = {"ctc": _ctc, "whisper": _whisper}


def load_recognizer(path: str | Path, threads: int | None = None, trim_margin_s: TrimMargin = PRECISION_DEFAULT) -> Recognizer:
    """Load the engine whose sidecar `path` is (or names), ready to transcribe. `trim_margin_s`: Whisper on
    ONNX Runtime runs its encoder on the audio plus this margin instead of 30 s; None: the whole window;
    by default the precision's measured choice (runtime/whisper.py)."""
    sidecar = read_sidecar(path)
    verify_files(sidecar)
    folder = Path(sidecar["_dir"])
    if sidecar["family"] not in RECOGNIZERS:
        raise ValueError(f"{path}: no recognizer for model family {sidecar['family']!r}")
    engines = {
        part: load_engine(folder / name, variant=Variant(sidecar["build"][part]["variant"]), threads=threads,
                          takes_turns=len(sidecar["files"]) > 1)
        for part, name in sidecar["files"].items()
    }
    return RECOGNIZERS[sidecar["family"]](engines, sidecar, trim_margin_s)
