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
    import soundfile
    import soxr

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioError(f"{path}: unreadable audio ({error})") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: holds NaN or infinite samples")
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
