"""ONNX Runtime engines: ONNX files prepared per variant (CPU here; CUDA/TensorRT providers on a GPU)."""

from __future__ import annotations

import shutil
from pathlib import Path

from asr_engines.engines.builder import BuilderUnavailable, GraphJob
from asr_engines.engines.int8.quantize import INT8_FORMS, quantize_dynamic_int8, quantize_int8
from asr_engines.engines.passes.encoder_positions import slice_positions
from asr_engines.engines.passes.float16 import convert_fp16
from asr_engines.families import GraphPart
from asr_engines.onnx_io import onnx_io
from asr_engines.variants import Precision, Variant


def _copy(job: GraphJob, source: Path) -> dict:
    shutil.copyfile(source, job.target)
    return {}


#: variant -> how its file is made from the (prepared) exported graph.
RECIPES = {
    Variant.FP32: _copy,
    Variant.FP16: lambda job, source: convert_fp16(source, job.target),
    Variant.INT8: lambda job, source: quantize_int8(source, job.target, job.calibration, INT8_FORMS["cpu"], job.float_nodes),
    Variant.INT8_QDQ: lambda job, source: quantize_int8(source, job.target, job.calibration, INT8_FORMS["tensorrt"], job.float_nodes),
    Variant.INT8_DYNAMIC: lambda job, source: quantize_dynamic_int8(source, job.target),
}


class OnnxRuntimeBuilder:
    """fp32 as exported; fp16 with norms/softmax/IO in fp32; int8 in the CPU form, and with `qdq` the TensorRT Q/DQ
    form beside it (`int8-qdq`: the file a TensorRT >= 10 build reads, for a board; slower than fp32 on a CPU)."""

    backend = "onnxruntime"
    suffix = ".onnx"
    isolate_builds = False

    def __init__(self, qdq: bool = False) -> None:
        self.qdq = qdq
        try:
            import onnxruntime
        except ImportError:
            raise BuilderUnavailable("onnxruntime is not installed: pip install 'asr-engines[cpu]'") from None
        self._version = onnxruntime.__version__

    def version(self) -> str:
        return self._version

    def variants(self, precision: Precision) -> list[Variant]:
        if precision == Precision.INT8:
            return [Variant.INT8, Variant.INT8_QDQ] if self.qdq else [Variant.INT8]
        return [Variant(precision.value)]

    def greedy_head(self, variant: Variant) -> str:
        # fp32 engines: the screened head reads the vocabulary projection in int8 and gives fp32's tokens
        # (docs/results/2026-12-06-screened-head.md); an argmax head over the full logits cost Whisper 3-8 % on a CPU
        # (docs/results/2026-12-05-quiet-speed.md). fp16 and int8 decoders, and the fp32 ones beside TensorRT's Q/DQ
        # file, keep their logits.
        return "screened" if variant == Variant.FP32 else ""

    def fuses_attention(self, variant: Variant) -> bool:
        # fp32 and the CPU int8 form (its quantizer leaves attention's two-input MatMuls float): one node per attention
        # (docs/results/2026-12-07-fused-attention.md). The fp16 file and the Q/DQ file for TensorRT keep the exported graph.
        return variant in (Variant.FP32, Variant.INT8)

    def part_variants(self, variant: Variant, part: GraphPart) -> tuple[Variant, ...]:
        # The CPU int8 engine builds each graph as its part says (Whisper: the encoder int8 or fp32, as measured;
        # dynamic int8 decoders); next to the TensorRT Q/DQ file the graphs that take no calibration stay fp32.
        if variant == Variant.INT8:
            return part.cpu_int8
        return (variant if part.calibrated or not variant.calibrated else Variant.FP32,)

    def build(self, job: GraphJob) -> dict:
        if not job.part.sliced_positions:
            return {**RECIPES[job.variant](job, job.source), "io": onnx_io(job.target)}
        prepared = job.target.with_name(f"{job.target.stem}.prepared.onnx")
        slice_positions(job.source, prepared)
        try:
            details = RECIPES[job.variant](job, prepared)
        finally:
            prepared.unlink()
        return {**details, "sliced_positions": True, "io": onnx_io(job.target)}
