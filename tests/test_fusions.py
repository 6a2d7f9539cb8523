"""GELU chains that read a DequantizeLinear fused in ONNX Runtime's CPU int8 form; TensorRT's form untouched."""

from __future__ import annotations

import numpy as np
import pytest

from asr_engines.manifest import load_manifest


def _op_types(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        key = f"{node.domain}:{node.op_type}" if node.domain else node.op_type
        counts[key] = counts.get(key, 0) + 1
    return counts


def _gelu_chain(root: str, output: str) -> list:
    """erf-GELU as the exporter writes it: x / sqrt(2) -> Erf -> + 1 -> * x -> * 0.5."""
    from onnx import helper

    return [helper.make_node("Div", [root, "sqrt2"], ["divided"]), helper.make_node("Erf", ["divided"], ["erf"]),
            helper.make_node("Add", ["erf", "one"], ["plus_one"]), helper.make_node("Mul", [root, "plus_one"], ["product"]),
            helper.make_node("Mul", ["product", "half"], [output])]


def _model(dequantized: bool):
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["root"])]
    if dequantized:
        nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
                 helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["root"])]
    graph = helper.make_graph(
        nodes + _gelu_chain("root", "y"), "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05]), helper.make_tensor("zero", TensorProto.UINT8, [], [128])]
        + [helper.make_tensor(name, TensorProto.FLOAT, [], [value]) for name, value in (("sqrt2", 1.4142135), ("one", 1.0), ("half", 0.5))])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model, x):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL  # the file's own ops
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_a_dequantized_gelu_chain_becomes_one_gelu_with_the_same_values():
    from asr_engines.engines.passes.fusions import fuse_dequantized_gelu

    x = np.linspace(-6, 6, 64, dtype=np.float32)[np.newaxis]
    chain = _model(dequantized=True)
    expected = _run(chain, x)
    assert fuse_dequantized_gelu(chain) == 1
    assert _op_types(chain) == {"QuantizeLinear": 1, "DequantizeLinear": 1, "com.microsoft:Gelu": 1}
    np.testing.assert_allclose(_run(chain, x), expected, atol=1e-6)


def test_a_chain_that_reads_a_float_node_is_left_for_onnx_runtime_to_fuse():
    from asr_engines.engines.passes.fusions import fuse_dequantized_gelu

    model = _model(dequantized=False)
    before = _op_types(model)
    assert fuse_dequantized_gelu(model) == 0
    assert _op_types(model) == before


@pytest.mark.parametrize("form", ["cpu", "tensorrt"])
def test_only_the_cpu_int8_engine_carries_fused_gelu(tiny_engines, form):
    import onnx

    name = "tiny-int8" if form == "cpu" else "tiny-int8-qdq"
    ops = _op_types(onnx.load(str(tiny_engines / f"{name}.onnx"), load_external_data=False))
    fused = load_manifest(tiny_engines / f"{name}.json").build["model"]["fused_gelu"]
    if form == "cpu":  # the tiny model's quantized convs have no bias: their GELU reads a DequantizeLinear
        assert fused > 0 and ops["com.microsoft:Gelu"] == fused
    else:
        assert fused == 0 and not any(key.startswith("com.microsoft:") for key in ops)
