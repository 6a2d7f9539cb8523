"""Which backend builds engines: the registry, apart from the builder protocol (builder.py) its backends import.
A new backend is a new subpackage and a new line in BUILDERS."""

from __future__ import annotations

from collections.abc import Callable

from asr_engines.engines.builder import Builder, BuilderUnavailable
from asr_engines.engines.trt.options import TensorRTOptions


def _onnxruntime(tensorrt: TensorRTOptions, qdq: bool) -> Builder:
    from asr_engines.engines.onnxrt.builder import OnnxRuntimeBuilder

    return OnnxRuntimeBuilder(qdq)


def _tensorrt(tensorrt: TensorRTOptions, qdq: bool) -> Builder:  # its int8 plans read a Q/DQ file of their own where needed
    from asr_engines.engines.trt.builder import TensorRTBuilder

    return TensorRTBuilder(tensorrt)


#: backend name -> its factory, best first (what `auto` tries). A new backend is a new line here and a new file.
BUILDERS: dict[str, Callable[[TensorRTOptions, bool], Builder]] = {"tensorrt": _tensorrt, "onnxruntime": _onnxruntime}


def make_builder(backend: str = "auto", tensorrt: TensorRTOptions | None = None, qdq: bool = False) -> Builder:
    """The builder for `backend`; `auto` takes TensorRT when `import tensorrt` works, else ONNX Runtime.
    `tensorrt` holds the options only TensorRT reads (profiles, INT8 path, workspace, caches); `qdq`: ONNX Runtime
    also writes int8's Q/DQ file for TensorRT (`int8-qdq`)."""
    tensorrt = tensorrt or TensorRTOptions()
    if backend == "auto":
        for name in BUILDERS:
            try:
                return make_builder(name, tensorrt, qdq)
            except BuilderUnavailable:
                continue
        raise BuilderUnavailable("neither TensorRT nor ONNX Runtime is installed: pip install 'asr-engines[cpu]'")
    if backend not in BUILDERS:
        raise BuilderUnavailable(f"unknown backend {backend!r}; choose from auto, {', '.join(BUILDERS)}")
    return BUILDERS[backend](tensorrt, qdq)
