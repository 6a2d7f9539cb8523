"""What a TensorRT build takes beyond the graph: shape profiles, the INT8 path, workspace and caches.

Only the TensorRT builder reads these; they are plain values, so the command line makes them without TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from asr_engines.calibration.datasets import DEFAULT_DATASET


@dataclass(frozen=True)
class TensorRTOptions:
    """Options of a TensorRT build. Profiles cover the utterance lengths of `profile_dataset` unless
    `profile_s` (min, opt, max seconds) overrides them."""

    profile_dataset: Path = DEFAULT_DATASET
    profile_s: tuple[float | None, float | None, float | None] = (None, None, None)
    max_batch: int = 1  # largest batch a plan takes (Whisper decodes up to this many 30 s windows at once)
    int8_mode: str = "auto"  # implicit (calibrator, TensorRT <= 10) | explicit (Q/DQ ONNX, >= 10) | auto by version
    workspace_fraction: float = 0.5  # of free device memory
    timing_cache: Path | None = None  # reused across builds; written after each
    strict_int8: bool = False  # an int8 plan whose layers show no int8 kernel fails instead of warning
