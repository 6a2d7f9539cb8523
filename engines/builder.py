"""The builder protocol: one ONNX graph in, one engine file out. One implementation per backend."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from calibration.stream import CalibrationStream

PRECISIONS = ("fp32", "fp16", "int8")

#: backend name -> "module:Class". A new backend is a new line here and a new file, nothing else.
BUILDERS = {
    "tensorrt": "engines.tensorrt_build:TensorRTBuilder",
    "onnxruntime": "engines.onnxruntime_build:OnnxRuntimeBuilder",
}


@dataclass(frozen=True)
class BuildOptions:
    """What a backend with static shapes or several INT8 paths needs; backends ignore what they do not use."""

    durations_s: tuple[float, ...] = ()  # the dataset's utterance lengths: the shape profile covers them
    profile_s: tuple[float | None, float | None, float | None] = (None, None, None)  # min/opt/max overrides
    max_batch: int = 1  # largest batch an engine takes (TensorRT profiles; ONNX Runtime takes any)
    dimensions: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # per graph, set by build_engines
    int8_mode: str = "auto"  # TensorRT: implicit (calibrator) | explicit (Q/DQ ONNX) | auto by version
    workspace_fraction: float = 0.5  # of free device memory
    timing_cache: Path | None = None


class BuilderUnavailable(RuntimeError):
    """The backend's libraries are not installed here."""


class Builder(Protocol):
    backend: str
    suffix: str  # engine file ending: ".onnx", ".plan"
    isolate_builds: bool  # build each engine in a fresh process, so its memory is returned (8 GB boards)

    def version(self) -> str: ...

    def variants(self, precision: str) -> list[str]:
        """The engines one precision yields (ONNX Runtime's int8 gives `int8` and `int8-qdq`)."""
        ...

    def needs_calibration(self, variant: str) -> bool: ...

    def part_variant(self, variant: str, calibrated: bool) -> str:
        """What a graph of an engine is built as: parts that take no calibration (Whisper's decoders) get
        the backend's choice for them in int8 engines."""
        ...

    def build(self, source: Path, target: Path, variant: str, calibration: CalibrationStream | None,
              options: BuildOptions) -> dict:
        """Write `target` from `source`; return details for the sidecar, with `io` (inputs/outputs) among them."""
        ...


def make_builder(backend: str = "auto") -> Builder:
    """The builder for `backend`; `auto` takes TensorRT when `import tensorrt` works, else ONNX Runtime."""
    if backend == "auto":
        for name in BUILDERS:
            try:
                return make_builder(name)
            except BuilderUnavailable:
                continue
    if backend not in BUILDERS:
        raise BuilderUnavailable(f"unknown backend {backend!r}; choose from auto, {', '.join(BUILDERS)}")
    module_name, class_name = BUILDERS[backend].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
