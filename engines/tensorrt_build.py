"""TensorRT plans (written in the TensorRT issue; importable here so `auto` can detect TensorRT)."""

from __future__ import annotations

from engines.builder import BuilderUnavailable


class TensorRTBuilder:
    backend = "tensorrt"
    suffix = ".plan"

    def __init__(self) -> None:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise BuilderUnavailable("TensorRT's Python bindings are not installed (on a Jetson: make install-jetson)") from None
