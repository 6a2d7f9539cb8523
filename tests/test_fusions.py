"""GELU fused before quantization in ONNX Runtime's CPU int8 form, not in TensorRT's Q/DQ form."""

from __future__ import annotations

import shutil

import numpy as np

from engines.sidecar import read_sidecar


def _op_types(path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        key = f"{node.domain}:{node.op_type}" if node.domain else node.op_type
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_cpu_int8_runs_fused_gelu_and_the_tensorrt_form_standard_ops(tiny_engines):
    cpu, tensorrt = _op_types(tiny_engines / "tiny-int8.onnx"), _op_types(tiny_engines / "tiny-int8-qdq.onnx")
    fused = read_sidecar(tiny_engines / "tiny-int8.json")["build"]["model"]["fused_gelu"]
    assert fused > 0 and cpu["com.microsoft:Gelu"] == fused and "Erf" not in cpu
    assert tensorrt["Erf"] == fused and not any(key.startswith("com.microsoft:") for key in tensorrt)
    assert read_sidecar(tiny_engines / "tiny-int8-qdq.json")["build"]["model"]["fused_gelu"] == 0


def test_fused_gelu_computes_what_the_chain_did(tiny_onnx, speech, tmp_path):
    from common.features import CTCFrontEnd
    from engines.fusions import fuse_gelu
    from runtime import load_engine

    fused_path = tmp_path / "fused.onnx"
    shutil.copyfile(tiny_onnx / "model.onnx", fused_path)
    assert fuse_gelu(fused_path) == _op_types(tiny_onnx / "model.onnx")["Erf"]
    assert "Erf" not in _op_types(fused_path)
    feeds = CTCFrontEnd()(speech[: 16000 * 3])
    chain = load_engine(tiny_onnx / "model.onnx").run(feeds)["logits"]
    fused = load_engine(fused_path).run(feeds)["logits"]
    np.testing.assert_allclose(fused, chain, rtol=1e-4, atol=1e-4)
