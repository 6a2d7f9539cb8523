"""Audio in: any file soundfile reads, at any rate and channel count, out as 16 kHz mono float32."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000


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


def check_rate(samples: np.ndarray, rate: int, expected: int = SAMPLE_RATE) -> None:
    """Refuse audio handed over in memory at the wrong rate, not mono, or not finite, instead of silently
    mis-transcribing it."""
    if rate != expected:
        raise AudioError(f"audio is {rate} Hz; the models expect {expected} Hz (resample it, or pass a file path)")
    if samples.ndim != 1:
        raise AudioError(f"audio has shape {samples.shape}; expected mono (1-D) samples")
    if not np.isfinite(samples).all():
        raise AudioError("audio holds NaN or infinite samples")


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

