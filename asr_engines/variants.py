"""Precisions and engine variants as types: what a user asks for, what a backend builds, how it is labelled.

A user asks for a `Precision` (`--precisions "fp32 fp16 int8"`). A backend turns each into one or more
`Variant`s, one engine file each: ONNX Runtime's int8 gives `int8` (the form fast on a CPU) and `int8-qdq`
(the explicit-quantization file TensorRT >= 10 builds from). A graph of an engine may be built as another
variant than the engine (Whisper's decoders, fed tokens not audio, take no calibration: `int8-dynamic` or
`fp16` in an int8 engine; ONNX Runtime's CPU int8 Whisper keeps its encoder `fp32`). The values are the strings
in file names, manifests, result rows and the store.
"""

from __future__ import annotations

from enum import Enum


class Precision(str, Enum):
    """The numeric precision of an engine's heavy layers (MatMul, Conv)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str) -> Precision:
        """`fp32`, `fp16` or `int8`; anything else is refused in one line."""
        try:
            return cls(text)
        except ValueError:
            raise ValueError(f"unknown precision {text!r}; choose from {', '.join(map(str, cls))}") from None


class Variant(str, Enum):
    """One kind of engine file a backend builds."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"  # entropy-calibrated, in the backend's fastest form
    INT8_QDQ = "int8-qdq"  # symmetric Q/DQ: the explicit-quantization ONNX TensorRT >= 10 builds from
    INT8_DYNAMIC = "int8-dynamic"  # int8 weights, activations quantized per call: graphs fed tokens, not audio

    def __str__(self) -> str:
        return self.value

    @property
    def precision(self) -> Precision:
        return Precision.INT8 if self.value.startswith("int8") else Precision(self.value)

    @property
    def calibrated(self) -> bool:
        """Whether building it needs the calibration stream."""
        return self in (Variant.INT8, Variant.INT8_QDQ)

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Variant.FP32: "fp32 as exported (TensorRT: TF32 off)",
    Variant.FP16: "fp16, norms and softmax kept fp32",
    Variant.INT8: "int8, entropy-calibrated on clean and noisy audio",
    Variant.INT8_QDQ: "int8 Q/DQ, symmetric: the file TensorRT >= 10 builds from",
    Variant.INT8_DYNAMIC: "int8 weights, activations quantized per call",
}

PRECISIONS: tuple[Precision, ...] = tuple(Precision)
