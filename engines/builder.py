"""The builder protocol: one graph of one engine in, one engine file out. One implementation per backend."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from calibration.stream import CalibrationStream
from common.variants import Precision, Variant
from engines.assets import GraphPart
from engines.tensorrt_options import TensorRTOptions


@dataclass(frozen=True)
class GraphJob:
    """One ONNX graph of an exported model, to be built as `variant` into `target` (inside a staging folder).

    `published_dir` is where the finished engine will appear: a backend may reuse what an earlier build of
    the same inputs left there (TensorRT's calibration cache)."""

    export_dir: Path
    family: str
    part: GraphPart
    variant: Variant
    target: Path
    calibration: CalibrationStream | None
    published_dir: Path
    float_nodes: dict[str, str] | None = None  # int8: the nodes that stay float, and why (int8_budget.py decided)

    @property
    def source(self) -> Path:
        return self.export_dir / self.part.file


class BuilderUnavailable(RuntimeError):
    """The backend's libraries are not installed here."""


class Builder(Protocol):
    backend: str
    suffix: str  # engine file ending: ".onnx", ".plan"
    isolate_builds: bool  # build each graph in a fresh process, so its memory is returned (8 GB boards)

    def version(self) -> str: ...

    def variants(self, precision: Precision) -> list[Variant]:
        """The engines one precision yields (ONNX Runtime's int8 gives `int8` and `int8-qdq`)."""
        ...

    def part_variant(self, variant: Variant, part: GraphPart) -> Variant:
        """What a graph of a `variant` engine is built as: graphs that take no calibration (Whisper's
        decoders) get the backend's choice for them in int8 engines."""
        ...

    def build(self, job: GraphJob) -> dict:
        """Write `job.target`; return details for the sidecar, with `io` (inputs/outputs) among them.
        Extra files written beside the target are named in `extra_files` and published with it."""
        ...


def _onnxruntime(tensorrt: TensorRTOptions) -> Builder:
    from engines.onnxruntime_build import OnnxRuntimeBuilder

    return OnnxRuntimeBuilder()


def _tensorrt(tensorrt: TensorRTOptions) -> Builder:
    from engines.tensorrt_build import TensorRTBuilder

    return TensorRTBuilder(tensorrt)


#: backend name -> its factory, best first (what `auto` tries). A new backend is a new line here and a new file.
BUILDERS: dict[str, Callable[[TensorRTOptions], Builder]] = {"tensorrt": _tensorrt, "onnxruntime": _onnxruntime}


def make_builder(backend: str = "auto", tensorrt: TensorRTOptions | None = None) -> Builder:
    """The builder for `backend`; `auto` takes TensorRT when `import tensorrt` works, else ONNX Runtime.
    `tensorrt` holds the options only TensorRT reads (profiles, INT8 path, workspace, caches)."""
    tensorrt = tensorrt or TensorRTOptions()
    if backend == "auto":
        for name in BUILDERS:
            try:
                return make_builder(name, tensorrt)
            except BuilderUnavailable:
                continue
        raise BuilderUnavailable("neither TensorRT nor ONNX Runtime is installed: pip install 'asr-engines[cpu]'")
    if backend not in BUILDERS:
        raise BuilderUnavailable(f"unknown backend {backend!r}; choose from auto, {', '.join(BUILDERS)}")
    return BUILDERS[backend](tensorrt)
