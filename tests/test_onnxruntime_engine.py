"""`OnnxRuntimeEngine.run_device` (runtime/onnxruntime_engine.py): outputs left where the provider keeps them and fed
back without a trip through the caller; on a CPU numpy arrays from `session.run`, elsewhere OrtValues through an
IOBinding (exercised here on the CPU's memory)."""

from __future__ import annotations

import numpy as np
import pytest

from asr_engines.runtime.engine import DeviceTensor, EngineError


@pytest.fixture(scope="module")
def accumulator(tmp_path_factory):
    """total = past + step (float32 [batch, n]), doubled = 2 * total: a KV cache's shape of data flow."""
    import onnx
    from onnx import TensorProto, helper

    def tensor(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "n"])

    graph = helper.make_graph([helper.make_node("Add", ["past", "step"], ["total"]),
                               helper.make_node("Add", ["total", "total"], ["doubled"])],
                              "accumulator", [tensor("past"), tensor("step")], [tensor("total"), tensor("doubled")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "accumulator.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("outputs_on_host", [True, False], ids=["session.run", "iobinding"])
def test_outputs_feed_the_next_run_and_cross_to_the_host_only_when_named(accumulator, outputs_on_host):
    from asr_engines.runtime.onnxruntime_engine import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(accumulator, threads=1)
    assert engine._outputs_on_host  # a CPU provider
    engine._outputs_on_host = outputs_on_host
    step = np.arange(6, dtype=np.float64).reshape(2, 3)  # cast to the input's float32
    host, device = engine.run_device({"past": np.zeros((2, 3), np.float32), "step": step}, to_host=["doubled"])
    assert list(host) == ["doubled"] and host["doubled"].dtype == np.float32
    np.testing.assert_array_equal(host["doubled"], 2 * step)
    total = device["total"]
    assert isinstance(total, DeviceTensor) and (total.backend, total.shape, total.dtype) == ("onnxruntime", (2, 3), "float32")
    for _ in range(3):  # each run's output is the next one's input, as the KV cache is
        host, device = engine.run_device({"past": device["total"], "step": step}, to_host=["total"])
    np.testing.assert_array_equal(host["total"], 4 * step)
    assert host["total"].tolist() == engine.run({"past": 3 * step, "step": step})["total"].tolist()


def test_wrong_inputs_and_outputs_are_refused_before_running(accumulator):
    from asr_engines.runtime.onnxruntime_engine import OnnxRuntimeEngine

    engine = OnnxRuntimeEngine(accumulator, threads=1)
    step = np.ones((1, 2), np.float32)
    with pytest.raises(EngineError, match="missing input 'step'"):
        engine.run_device({"past": step})
    foreign = DeviceTensor("tensorrt", (1, 2), "float32", 0)
    with pytest.raises(EngineError, match="a tensorrt device tensor cannot feed ONNX Runtime"):
        engine.run_device({"past": foreign, "step": step})
    with pytest.raises(EngineError, match=r"no output \['logits'\]"):
        engine.run_device({"past": step, "step": step}, to_host=["logits"])
