"""ONNX Runtime engines: ONNX files prepared per precision (CPU here; CUDA/TensorRT providers on a GPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

from calibration.stream import CalibrationStream
from common.onnx_io import onnx_io
from engines.builder import BuilderUnavailable, BuildOptions
from engines.float16 import convert_fp16
from engines.quantize import INT8_FORMS, quantize_dynamic_int8, quantize_int8


class OnnxRuntimeBuilder:
    """fp32 as exported; fp16 with norms/softmax/IO in fp32; int8 in the CPU form plus the TensorRT Q/DQ form."""

    backend = "onnxruntime"
    suffix = ".onnx"
    isolate_builds = False

    def __init__(self) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise BuilderUnavailable("onnxruntime is not installed (pip install onnxruntime)") from None
        self._version = onnxruntime.__version__

    def version(self) -> str:
        return self._version

    def variants(self, precision: str) -> list[str]:
        return ["int8", "int8-qdq"] if precision == "int8" else [precision]

    def needs_calibration(self, variant: str) -> bool:
        return variant.startswith("int8")

    def part_variant(self, variant: str, calibrated: bool) -> str:
        # Decoders in the CPU int8 engine: int8 weights, activations quantized per call (no calibration
        # range to clip their outliers); next to the TensorRT Q/DQ file they stay fp32.
        if calibrated or not variant.startswith("int8"):
            return variant
        return "int8-dynamic" if variant == "int8" else "fp32"

    def build(self, source: Path, target: Path, variant: str, calibration: CalibrationStream | None,
              options: BuildOptions | None = None) -> dict:
        if variant == "fp32":
            shutil.copyfile(source, target)
            details = {}
        elif variant == "fp16":
            details = convert_fp16(source, target)
        elif variant == "int8-dynamic":
            details = quantize_dynamic_int8(source, target)
        elif variant in ("int8", "int8-qdq"):
            form = INT8_FORMS["cpu" if variant == "int8" else "tensorrt"]
            details = quantize_int8(source, target, calibration, form)
        else:
            raise ValueError(f"ONNX Runtime builds fp32, fp16, int8, int8-qdq and int8-dynamic, not {variant!r}")
        return {**details, "io": onnx_io(target)}
