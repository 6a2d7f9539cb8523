"""INT8 ONNX from one calibration stream, entropy-calibrated, in the two forms backends want.

- `cpu`: asymmetric U8 activations, S8 per-tensor weights, Q/DQ, MatMul + Conv, GELU chains that read a
  dequantized output fused (fusions.py). What ONNX Runtime's CPU kernels (VNNI/AMX) run fastest
  (docs/results/2026-12-02-ctc-cpu.md).
- `tensorrt`: symmetric S8 activations (zero point 0), S8 per-channel weights, Q/DQ, MatMul/Gemm/Conv
  only: the explicit-quantization file TensorRT >= 10 builds from (the only INT8 path in TensorRT 11).
  Slower than fp32 on a CPU, so never the CPU engine; built on ONNX Runtime only when asked (`--qdq`).

Both keep LayerNorm, Softmax (its input too: attention scores are not quantized), residual Add and the first
Conv (it reads the raw input) in float: quantizing Add and LayerNorm destroyed Whisper transcripts in a
public report, and 8-bit raw audio loses the quiet parts. Nodes whose inputs 8 bits cannot hold (outliers,
attention probabilities) stay float too: see sensitivity.py. The manifest lists every float node and why.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from asr_engines.calibration.stream import CalibrationStream
from asr_engines.engines.int8.sensitivity import fragile_nodes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Int8Form:
    """One way of writing an INT8 model: who it is for and the quantizer settings."""

    name: str
    description: str
    op_types: tuple[str, ...]
    symmetric_activations: bool
    per_channel: bool
    fuse_gelu: bool  # GELU chains that read a DequantizeLinear, after quantizing (fusions.py)


INT8_FORMS = {
    "cpu": Int8Form("cpu", "Q/DQ U8S8 per-tensor, MatMul+Conv (fast on ONNX Runtime CPU)", ("MatMul", "Conv"), False, False, True),
    "tensorrt": Int8Form(
        "tensorrt", "Q/DQ S8S8 symmetric, per-channel weights, MatMul/Gemm/Conv (for TensorRT >= 10)",
        ("MatMul", "Gemm", "Conv"), True, True, False,
    ),
}


def quantize_int8(source: Path, target: Path, stream: CalibrationStream, form: Int8Form,
                  excluded: dict[str, str] | None = None) -> dict:
    """Write `target`, an INT8 Q/DQ copy of `source` calibrated (entropy) on `stream`; return its details.
    `excluded` (node -> why it stays float) is the decision of the INT8 WER budget where one was made
    (int8_budget.py); without it, the rule-based float nodes (float_nodes) stay float."""
    prepared = target.with_name(target.stem + ".prep.onnx")
    prepare(source, prepared)
    excluded = float_nodes(prepared, stream, form) if excluded is None else excluded
    fused = quantize_prepared(prepared, target, stream, form, excluded)
    prepared.unlink()
    return {
        "int8_form": form.name,
        "int8_description": form.description,
        "calibration_method": "entropy",
        "quantized_op_types": list(form.op_types),
        "float_nodes": excluded,
        "softmax_inputs": "float",
        "fused_gelu": fused,
    }


def prepare(source: Path, prepared: Path) -> None:
    """ONNX Runtime's pre-processing before quantization (shape inference, graph optimisation) into `prepared`.

    Its symbolic shape inference is told to merge lengths it cannot prove equal: Whisper's positional table
    sliced to the input gives Min(1500, n) against n, which hold equal there. Without it that graph fails and
    leaves temporary files in the working directory; every other graph here comes out byte for byte the same
    (checked on wav2vec2-base and Whisper's three graphs). Where it still fails (Moonshine's encoder: a shape read off
    its attention mask it cannot evaluate), ONNX's own shape inference serves; calibration runs the graph anyway."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(prepared), auto_merge=True)
    except AssertionError:
        log.info("%s: symbolic shape inference failed; prepared with ONNX's shape inference only", source.name)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)


def quantize_prepared(prepared: Path, target: Path, stream: CalibrationStream, form: Int8Form, excluded: dict[str, str]) -> int:
    """quantize_static on a prepared model, `excluded` nodes left in float: truly so. ONNX Runtime excludes them
    from quantization but may still feed them a Q/DQ'd activation (the output of a quantized neighbour, as
    attention's value projection feeding probabilities x values); those inputs are put back as well (qdq.py).
    Returns how many GELU chains the form's fusion took (fusions.py)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    from asr_engines.engines.passes.fusions import fuse_dequantized_gelu
    from asr_engines.engines.passes.qdq import with_float_nodes, with_float_softmax_inputs

    class StreamReader(CalibrationDataReader):
        """Hands the stream to the calibrator one sample per range, so it holds one sample's tensors at a
        time (all at once, Whisper tiny's encoder outputs took 24 GB for 32 samples and were OOM-killed)."""

        def __init__(self) -> None:
            self._samples = list(stream)
            self._pending = iter(self._samples)

        def __len__(self) -> int:
            return len(self._samples)

        def set_range(self, start_index: int, end_index: int) -> None:
            self._pending = iter(self._samples[start_index:end_index])

        def get_next(self) -> dict | None:
            return next(self._pending, None)

    activation = QuantType.QInt8 if form.symmetric_activations else QuantType.QUInt8
    with contextlib.redirect_stdout(io.StringIO()):  # its calibrator prints a line per sample range
        quantize_static(
            str(prepared), str(target), StreamReader(),
            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(form.op_types), per_channel=form.per_channel,
            activation_type=activation, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.Entropy,
            nodes_to_exclude=list(excluded),
            extra_options={"ActivationSymmetric": form.symmetric_activations, "WeightSymmetric": True,
                           "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
                           "CalibStridedMinMax": 1},  # despite the name: any calibrator, fed one sample per step
        )
    model = onnx.load(str(target))
    if excluded:
        model = with_float_nodes(model, onnx.load(str(prepared)), set(excluded))
    with_float_softmax_inputs(model)
    fused = fuse_dequantized_gelu(model) if form.fuse_gelu else 0
    onnx.save(model, str(target))
    return fused


def float_nodes(model_path: Path, stream: CalibrationStream, form: Int8Form) -> dict[str, str]:
    """Node name -> why it stays float: the Conv that reads the raw waveform (the first in graph order) and
    the nodes whose inputs 8 bits cannot hold on this stream (sensitivity.py)."""
    import onnx

    convs = [node.name for node in onnx.load(str(model_path), load_external_data=False).graph.node if node.op_type == "Conv"]
    excluded = {name: "reads the raw input" for name in convs[:1]}
    excluded.update(fragile_nodes(model_path, stream, form.op_types, form.symmetric_activations))
    return excluded


def quantize_dynamic_int8(source: Path, target: Path) -> dict:
    """Write `target` with int8 MatMul/Gemm weights and activations quantized at run time (ONNX Runtime).

    For graphs fed tokens rather than audio (Whisper's decoders): no calibration range to clip outliers,
    and the weights, read once per generated token, shrink four times. One weight scale per output channel:
    tiny.en's vocabulary projection holds 51864 rows of one scale otherwise; per-channel weights halved what
    trimming cost, at the same speed (docs/results/2026-12-02-whisper-int8-cpu.md)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ONNX's shape inference types nothing after a com.microsoft node (a fused attention): those tensors are float
    quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul", "Gemm"], per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return {"int8_form": "dynamic", "quantized_op_types": ["MatMul", "Gemm"], "per_channel": True, "calibration_method": None}
