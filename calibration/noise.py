"""Seeded noise: the study's fixed-level preset and SNR-controlled white, pink, brown, babble or file noise.

Spec strings (the bench's `--noise`) are listed in NOISE_KINDS, the one table of noise kinds. `study`
reproduces arXiv 2405.01004's noisy set: white noise of fixed amplitude drawn uniformly from [-0.1, 0.1] of
full scale (standard deviation 0.1/sqrt(3) = 0.0577), added whatever the speech level, so the SNR varies per
utterance (about 1 to 9 dB on the bundled set). The others scale the noise so that
10*log10(P_speech / P_noise) over the whole utterance equals the target exactly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_engines.audio import load_audio

STUDY_PEAK = 0.1
BABBLE_TALKERS = 4


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
    """Parse a spec string such as `study`, `white:10dB`, `white:10 dB` or `file:noise.wav:5dB`; `str()` of
    the result is its one canonical text (what result rows and the store carry)."""
    text = text.strip()
    if text == "study":
        return NoiseSpec("study")
    kind, _, rest = text.partition(":")
    path_text = ""
    if kind == "file":
        path_text, _, rest = rest.rpartition(":")
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*(?:dB)?", rest.strip(), flags=re.IGNORECASE)
    if kind not in NOISE_KINDS or kind == "study" or match is None or (kind == "file" and not path_text):
        raise NoiseSpecError(f"bad noise spec {text!r}: use {NOISE_HELP}")
    return NoiseSpec(kind, float(match.group(1)), Path(path_text) if path_text else None)


def noisy_draw(seed: int, draw: int, index: int) -> np.random.Generator:
    """The random stream for noise draw `draw` of utterance `index`: the bench's draws and the files
    `asr-engines calibrate noisy --seed` writes are the same noise."""
    return np.random.default_rng([seed, draw, index])


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
        raw = self._raw_noise(length, rng, utterance_id)
        if self.spec.snr_db is None:  # fixed level, whatever the speech
            return raw.astype(np.float32)
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
        return NOISE_KINDS[self.spec.kind].make(self, length, rng, utterance_id)

    def _babble(self, length: int, rng: np.random.Generator, utterance_id: str | None) -> np.ndarray:
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


@dataclass(frozen=True)
class NoiseKind:
    """One kind of noise: its spec as users write it, what it is, and how its raw samples are drawn
    (`make(mixer, length, rng, utterance_id)`; kinds with an SNR are scaled to it afterwards)."""

    example: str
    description: str
    make: Callable[[NoiseMixer, int, np.random.Generator, str | None], np.ndarray]


#: Every noise kind. A new kind is one line here.
NOISE_KINDS: dict[str, NoiseKind] = {
    "study": NoiseKind("study", "the study's set: uniform in [-0.1, 0.1] of full scale, fixed level",
                       lambda mixer, n, rng, _: rng.uniform(-STUDY_PEAK, STUDY_PEAK, n)),
    "white": NoiseKind("white:10dB", "white Gaussian noise at the SNR", lambda mixer, n, rng, _: _coloured(n, rng, 0.0)),
    "pink": NoiseKind("pink:5dB", "1/f noise at the SNR", lambda mixer, n, rng, _: _coloured(n, rng, 1.0)),
    "brown": NoiseKind("brown:5dB", "1/f^2 noise at the SNR", lambda mixer, n, rng, _: _coloured(n, rng, 2.0)),
    "babble": NoiseKind("babble:10dB", f"{BABBLE_TALKERS} other utterances of the set mixed, at the SNR",
                        lambda mixer, n, rng, utterance: mixer._babble(n, rng, utterance)),
    "file": NoiseKind("file:PATH:10dB", "a noise recording, looped from a random offset, at the SNR",
                      lambda mixer, n, rng, _: _loop_from(mixer._file_noise, n, rng)),
}
NOISE_HELP = " | ".join(kind.example for kind in NOISE_KINDS.values())
