"""The calibration stream: fixed-length model inputs from clean and noisy utterances.

One stream feeds every INT8 step (ONNX Runtime's static quantizer, TensorRT's entropy calibrator,
the Q/DQ file for TensorRT >= 10), so all backends see the same data, and its sha256 goes into each
engine's manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import Utterance
from asr_engines.calibration.noise import NoiseMixer, parse_noise
from asr_engines.features import FrontEnd


@dataclass
class CalibrationStream:
    """Model inputs, all the same shape, and what they are made of."""

    inputs: list[dict[str, np.ndarray]]
    description: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for sample in self.inputs:
            for name in sorted(sample):
                digest.update(name.encode())
                digest.update(np.ascontiguousarray(sample[name]).tobytes())
        return digest.hexdigest()

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self.inputs)

    def __len__(self) -> int:
        return len(self.inputs)


def calibration_stream(
    utterances: Sequence[Utterance],
    front_end: FrontEnd,
    count: int = 32,
    noisy_fraction: float = 0.5,
    noise: str = "study",
    seed: int = 0,
    length_s: float | None = None,
) -> CalibrationStream:
    """Draw `count` utterances (seeded), add `noise` to `noisy_fraction` of them, fit all to `length_s`.

    `length_s` defaults to the median duration of the drawn utterances; longer audio is cropped,
    shorter audio zero-padded after the front end (as a padded batch would be).
    """
    if not 0 <= noisy_fraction <= 1:
        raise ValueError("noisy_fraction must be within [0, 1]")
    rng = np.random.default_rng(seed)
    picked = [utterances[i] for i in rng.permutation(len(utterances))[: min(count, len(utterances))]]
    audio = {utterance.id: utterance.load() for utterance in picked}
    if length_s is None:
        length_s = float(np.median([len(samples) for samples in audio.values()]) / SAMPLE_RATE)
    noisy_count = int(round(len(picked) * noisy_fraction))
    spec = parse_noise(noise)
    mixer = NoiseMixer(spec, babble_pool=audio) if noisy_count else None
    inputs = []
    for index, utterance in enumerate(picked):
        samples = audio[utterance.id]
        if index < noisy_count:
            samples = mixer.add(samples, np.random.default_rng([seed, index]), utterance.id)
        inputs.append(front_end.fixed_length(front_end(samples), length_s))
    description = {
        "utterances": len(picked),
        "noisy": noisy_count,
        "noise": str(spec),
        "seed": seed,
        "length_s": round(length_s, 3),
        "ids": [utterance.id for utterance in picked],
    }
    return CalibrationStream(inputs, description)
