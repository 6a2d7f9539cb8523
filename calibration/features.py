"""Model front ends: audio samples -> the named input arrays an engine takes.

They sit here, upstream of engines and runtime, because INT8 calibration and inference must
prepare inputs identically. Each front end is described by a small dict that travels in the engine's
sidecar, so the runtime rebuilds it without transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from calibration.audio import SAMPLE_RATE


class FrontEnd(Protocol):
    """Turns 16 kHz mono audio into engine inputs."""

    def __call__(self, audio: np.ndarray) -> dict[str, np.ndarray]: ...

    def fixed_length(self, inputs: dict[str, np.ndarray], seconds: float) -> dict[str, np.ndarray]:
        """Crop or zero-pad the inputs to `seconds` of audio (calibration runs at one shape)."""
        ...

    def config(self) -> dict: ...


@dataclass(frozen=True)
class CTCFrontEnd:
    """wav2vec2-family input: raw samples, zero-mean unit-variance when the processor says `do_normalize`."""

    input_name: str = "input_values"
    do_normalize: bool = True

    def __call__(self, audio: np.ndarray) -> dict[str, np.ndarray]:
        samples = np.asarray(audio, np.float32)
        if self.do_normalize:
            # Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm: the 1e-7 matters for silence.
            samples = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
        return {self.input_name: samples[np.newaxis, :].astype(np.float32)}

    def fixed_length(self, inputs: dict[str, np.ndarray], seconds: float) -> dict[str, np.ndarray]:
        length = int(round(seconds * SAMPLE_RATE))
        values = inputs[self.input_name][:, :length]
        padded = np.zeros((values.shape[0], length), np.float32)
        padded[:, : values.shape[1]] = values
        return {self.input_name: padded}

    def config(self) -> dict:
        return {"kind": "ctc", "input_name": self.input_name, "do_normalize": self.do_normalize}


def front_end_from_config(config: dict) -> FrontEnd:
    """Rebuild a front end from the dict its `config()` wrote into a sidecar."""
    kinds = {"ctc": CTCFrontEnd}
    settings = dict(config)
    kind = settings.pop("kind")
    if kind not in kinds:
        raise ValueError(f"unknown front end {kind!r}; this runtime knows {sorted(kinds)}")
    return kinds[kind](**settings)
