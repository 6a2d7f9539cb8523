"""Seeded noise: the study's fixed-level preset and SNR-controlled white, pink, brown, babble or file noise.

Spec strings (the bench's `--noise`): `study`, `white:10dB`, `pink:5dB`, `brown:0dB`, `babble:10dB`,
`file:PATH:10dB`. `study` reproduces arXiv 2405.01004's noisy set: white noise of fixed amplitude drawn
uniformly from [-0.1, 0.1] of full scale (standard deviation 0.1/sqrt(3) = 0.0577), added whatever the
speech level, so the SNR varies per utterance (about 1 to 9 dB on the bundled set). The others scale the
noise so that 10*log10(P_speech / P_noise) over the whole utterance equals the target exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.audio import load_audio

STUDY_PEAK = 0.1
BABBLE_TALKERS = 4
_SNR_KINDS = ("white", "pink", "brown", "babble", "file")


class NoiseSpecError(ValueError):
    """A `--noise` string that does not parse."""


@dataclass(frozen=True)
class NoiseSpec:
    """What noise to add: `kind`, the target SNR in dB (None for `study`), and a file for `file`."""

    kind: str
    snr_db: float | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.kind == "study":
            return "study"
        if self.kind == "file":
            return f"file:{self.path}:{self.snr_db:g}dB"
        return f"{self.kind}:{self.snr_db:g}dB"


def parse_noise(text: str) -> NoiseSpec:
    """Parse a spec string such as `study`, `white:10dB` or `file:noise.wav:5dB`."""
    if text == "study":
        return NoiseSpec("study")
    kind, _, rest = text.partition(":")
    path = None
    if kind == "file":
        path_text, _, rest = rest.rpartition(":")
        path = Path(path_text)
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*(?:dB)?", rest, flags=re.IGNORECASE)
    if kind not in _SNR_KINDS or match is None or (kind == "file" and not path_text):
        raise NoiseSpecError(
            f"bad noise spec {text!r}: use study, white:10dB, pink:5dB, brown:5dB, babble:10dB or file:PATH:10dB"
        )
    return NoiseSpec(kind, float(match.group(1)), path)


def snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """10*log10 of mean speech power over mean noise power."""
    return float(10 * np.log10(np.mean(np.square(speech, dtype=np.float64)) / np.mean(np.square(noise, dtype=np.float64))))


class NoiseMixer:
    """Adds one kind of noise to utterances. `babble_pool` (id -> audio) feeds `babble`."""

    def __init__(self, spec: NoiseSpec, babble_pool: Mapping[str, np.ndarray] | None = None):
        self.spec = spec
        self._babble_pool = dict(babble_pool or {})
        self._file_noise = load_audio(spec.path) if spec.kind == "file" else None
        if spec.kind == "babble" and len(self._babble_pool) < 2:
            raise NoiseSpecError("babble noise needs at least two other utterances to mix")

    def noise_for(self, speech: np.ndarray, rng: np.random.Generator, utterance_id: str | None = None) -> np.ndarray:
        """The noise (float32, same length as `speech`) that `add` would mix in."""
        length = len(speech)
        if self.spec.kind == "study":
            return rng.uniform(-STUDY_PEAK, STUDY_PEAK, length).astype(np.float32)
        raw = self._raw_noise(length, rng, utterance_id)
        speech_power = np.mean(np.square(speech, dtype=np.float64))
        noise_power = np.mean(np.square(raw, dtype=np.float64))
        if speech_power == 0 or noise_power == 0:
            return np.zeros(length, np.float32)
        gain = np.sqrt(speech_power / (noise_power * 10 ** (self.spec.snr_db / 10)))
        return (raw * gain).astype(np.float32)

    def add(self, speech: np.ndarray, rng: np.random.Generator, utterance_id: str | None = None) -> np.ndarray:
        """`speech` plus noise, float32. Not clipped: the pipeline stays in float."""
        return speech + self.noise_for(speech, rng, utterance_id)

    def _raw_noise(self, length: int, rng: np.random.Generator, utterance_id: str | None) -> np.ndarray:
        kind = self.spec.kind
        if kind in ("white", "pink", "brown"):
            return _coloured(length, rng, exponent={"white": 0.0, "pink": 1.0, "brown": 2.0}[kind])
        if kind == "file":
            return _loop_from(self._file_noise, length, rng)
        others = sorted(key for key in self._babble_pool if key != utterance_id)
        talkers = rng.choice(len(others), size=min(BABBLE_TALKERS, len(others)), replace=False)
        mix = np.zeros(length, np.float64)
        for index in talkers:
            voice = _loop_from(self._babble_pool[others[index]], length, rng)
            mix += voice / max(np.sqrt(np.mean(np.square(voice, dtype=np.float64))), 1e-12)
        return mix


def _coloured(length: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise whose power spectrum falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    white = rng.standard_normal(length)
    if exponent == 0:
        return white
    spectrum = np.fft.rfft(white)
    frequencies = np.fft.rfftfreq(length)
    frequencies[0] = frequencies[1] if length > 2 else 1.0
    return np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=length)


def _loop_from(source: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of `source` from a random offset, looping where it is too short."""
    start = int(rng.integers(len(source)))
    repeats = -(-(start + length) // len(source))
    return np.tile(source, repeats)[start : start + length].astype(np.float64)
