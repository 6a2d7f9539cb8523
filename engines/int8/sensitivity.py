"""Which nodes INT8 would break: found on the calibration data before quantizing, kept in float.

Per-tensor 8-bit activations fail where a tensor has outliers: the step grows with the largest value and
the typical values round away. Whisper's encoder has such tensors (its last FFN, softmax probabilities):
quantizing everything took whisper tiny.en from 8 % to over 300 % WER here. So each candidate node's input
activation is quantized alone, with the range the calibrator sees, and a node whose input keeps less than
`min_sqnr_db` of signal-to-quantisation-noise stays float. A MatMul of two activations is judged on both:
attention scores (queries x keys) usually pass, attention probabilities (mostly near zero, a few near one)
never do, so probabilities x values stays float.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asr_engines.calibration.stream import CalibrationStream

MIN_SQNR_DB = 30.0  # an 8-bit range covering 14x the RMS; Gaussian-like tensors reach about 40 dB


def fragile_nodes(model_path: Path, stream: CalibrationStream, op_types: tuple[str, ...], symmetric: bool,
                  min_sqnr_db: float = MIN_SQNR_DB, samples: int = 4) -> dict[str, str]:
    """Node name -> why it stays float, for every `op_types` node INT8 would hurt."""
    import onnx
    import onnxruntime

    model = onnx.load(str(model_path))
    constants = {initializer.name for initializer in model.graph.initializer}
    constants |= {out for node in model.graph.node if node.op_type == "Constant" for out in node.output}
    probed = {}
    for node in model.graph.node:
        if node.op_type in op_types:
            both = node.op_type == "MatMul" and node.input[1] not in constants
            probed[node.name] = list(node.input[:2]) if both else [node.input[0]]
    graph_outputs = {output.name for output in model.graph.output}
    for tensor in sorted({t for tensors in probed.values() for t in tensors} - graph_outputs):
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(tensor))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    inputs = list(stream)[:samples]
    tensors = sorted({t for tensors in probed.values() for t in tensors})

    def runs():
        """One sample's probed tensors at a time: attention probabilities alone are heads x 1500 x 1500 floats
        per layer for Whisper, so holding every sample's would not fit an 8 GB board."""
        for sample in inputs:
            yield dict(zip(names, session.run(None, sample)))

    low, high = dict.fromkeys(tensors, np.inf), dict.fromkeys(tensors, -np.inf)
    for run in runs():  # first pass: the range the calibrator sees, over every sample
        for tensor in tensors:
            low[tensor], high[tensor] = min(low[tensor], float(run[tensor].min())), max(high[tensor], float(run[tensor].max()))
    worst = dict.fromkeys(tensors, np.inf)
    for run in runs():  # second pass: each sample quantized over that range; the worst sample counts
        for tensor in tensors:
            worst[tensor] = min(worst[tensor], _sqnr_db(run[tensor], low[tensor], high[tensor], symmetric))
    fragile = {}
    for node_name, node_tensors in probed.items():
        for tensor in node_tensors:
            if worst[tensor] < min_sqnr_db:
                fragile[node_name] = (f"input {tensor} SQNR {worst[tensor]:.1f} dB < {min_sqnr_db:g} dB at 8 bits "
                                      f"(range {low[tensor]:.3g} to {high[tensor]:.3g})")
                break
    return fragile


def _sqnr_db(values: np.ndarray, low: float, high: float, symmetric: bool) -> float:
    """Signal to noise of quantizing `values` to 8 bits over [low, high] (symmetric: +-max|.|, zero point 0)."""
    values = values.astype(np.float64)
    if symmetric:
        bound = max(abs(low), abs(high))
        low, high, levels = -bound, bound, 254
    else:
        low, high, levels = min(low, 0.0), max(high, 0.0), 255
    step = (high - low) / levels if high > low else 1.0
    quantized = np.clip(np.round((values - low) / step), 0, levels) * step + low
    noise = np.mean((values - quantized) ** 2)
    signal = np.mean(values**2)
    return float("inf") if noise == 0 else float(10 * np.log10(max(signal, 1e-30) / noise))
