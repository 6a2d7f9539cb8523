"""Audio in: any file soundfile reads, at any rate and channel count, out as 16 kHz mono float32."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000


class Samples(Protocol):
    """16 kHz mono float32 samples read a span at a time: a numpy array, or a `Recording` on disk."""

    def __len__(self) -> int: ...

    def __getitem__(self, span: slice) -> np.ndarray: ...


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and says why."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read `path`, average its channels and resample (soxr, high quality) to `sample_rate`.

    Returns float32 samples. Raises AudioError, naming the file, for a missing, unreadable or empty file and
    for one holding NaN or infinite samples (a float WAV can; transcribing them gives garbage that looks like text).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    return _read(str(path), str(path), sample_rate)


def decode_audio(data: bytes, name: str = "upload", sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An encoded file held in memory (WAV, FLAC, OGG, MP3: what libsndfile reads), as `load_audio` reads a
    path; AudioError naming `name` when it is not audio."""
    import io

    return _read(io.BytesIO(data), name, sample_rate)


def _read(source, name: str, sample_rate: int) -> np.ndarray:
    import soundfile
    import soxr

    try:
        samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioError(f"{name}: unreadable audio ({error})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{name}: the file holds no samples")
    if not np.isfinite(samples).all():
        raise AudioError(f"{name}: holds NaN or infinite samples")
    mono = samples.mean(axis=1, dtype=np.float32)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return mono


def checked_samples(samples: np.ndarray | Recording, rate: int, expected: int = SAMPLE_RATE) -> Samples:
    """Audio handed over in memory, as the recognizers read it: float32 mono samples, integer PCM (what microphones
    deliver) scaled as soundfile reads it (int16 / 32768). Refuses, instead of silently mis-transcribing, what is
    not a numpy array, at the wrong rate, not mono, or not finite. A `Recording` is already all of that."""
    if isinstance(samples, Recording):
        return samples
    if not isinstance(samples, np.ndarray):
        raise AudioError(f"audio must be a numpy array of samples, not {type(samples).__name__}")
    if rate != expected:
        raise AudioError(f"audio is {rate} Hz; the models expect {expected} Hz (resample it, or pass a file path)")
    if samples.ndim != 1:
        raise AudioError(f"audio has shape {samples.shape}; expected mono (1-D) samples")
    return as_float_mono(samples)


def as_float_mono(samples: np.ndarray) -> np.ndarray:
    """Samples as a microphone or a socket hands them over, as float32 mono: integer PCM scaled to [-1, 1) as
    soundfile reads it (int16 / 32768), float kept, channels ([samples, channels]) averaged."""
    samples = np.asarray(samples)
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples.astype(np.float32) / float(2 ** (8 * samples.dtype.itemsize - 1))
    elif not np.issubdtype(samples.dtype, np.floating):
        raise AudioError(f"audio samples must be numbers, not {samples.dtype}")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    elif samples.ndim != 1:
        raise AudioError(f"audio has shape {samples.shape}; expected samples or [samples, channels]")
    samples = samples.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        raise AudioError("audio holds NaN or infinite samples")
    return samples


class StreamResampler:
    """Chunks at `rate` in, 16 kHz out, one stream's worth (soxr keeps the filter's state between chunks)."""

    def __init__(self, rate: int):
        import soxr

        if rate <= 0:
            raise AudioError(f"sample rate must be positive, not {rate}")
        self.rate = rate
        self._soxr = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ") if rate != SAMPLE_RATE else None

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._soxr is None:
            return samples
        return self._soxr.resample_chunk(samples, last=last).astype(np.float32, copy=False)



class Recording:
    """An audio file decoded once to 16 kHz mono float32 into an unlinked temporary file, then read a span at a
    time (`recording[start:end]`, `len(recording)`): a recognizer's memory stays that of the spans it reads, however
    long the file. The temporary file has no name, so it is gone when the recording closes or its process ends,
    however it ends. It takes 64 kB of disk per second of audio (230 MB an hour) in $TMPDIR."""

    def __init__(self, path: str | Path, block_s: float = 60.0):
        import soundfile

        self.path = Path(path)
        if not self.path.is_file():
            raise AudioError(f"{self.path}: no such file")
        self._file = tempfile.TemporaryFile(prefix="asr-engines-recording-")
        self._length = 0
        try:
            with soundfile.SoundFile(str(self.path)) as source:
                resample = StreamResampler(source.samplerate)
                while True:
                    block = source.read(int(block_s * source.samplerate), dtype="float32", always_2d=True)
                    self._append(resample(self._mono(block), last=len(block) == 0))
                    if len(block) == 0:
                        break
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            self.close()
            raise AudioError(f"{self.path}: unreadable audio ({error})") from None
        except AudioError:
            self.close()
            raise
        if self._length == 0:
            self.close()
            raise AudioError(f"{self.path}: the file holds no samples")
        self._file.flush()  # spans are read from the descriptor, under the file object's buffer

    def _mono(self, block: np.ndarray) -> np.ndarray:
        mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
        if not np.isfinite(mono).all():
            raise AudioError(f"{self.path}: holds NaN or infinite samples")
        return mono

    def _append(self, samples: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(samples, np.float32).tobytes())
        self._length += len(samples)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, span: slice) -> np.ndarray:
        if not isinstance(span, slice) or span.step not in (None, 1):
            raise TypeError("a Recording is read by spans: recording[start:end]")
        start, stop, _ = span.indices(self._length)
        samples = np.empty(max(stop - start, 0), np.float32)
        if len(samples) and os.preadv(self._file.fileno(), [memoryview(samples).cast("B")], start * 4) != samples.nbytes:
            raise AudioError(f"{self.path}: its decoded samples were cut short on disk")
        return samples

    @property
    def seconds(self) -> float:
        return self._length / SAMPLE_RATE

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
