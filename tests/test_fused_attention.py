"""Whisper's attentions fused into ONNX Runtime's MultiHeadAttention (engines/passes/attention.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

HEADS, HEAD_SIZE, ENCODER_FRAMES = 2, 32, 40  # the random tiny Whisper of conftest.py


def _session(model):
    import onnxruntime

    return onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _feeds(session, tokens: int, past: int) -> dict:
    """Inputs for a batch of 2: `tokens` new tokens after `past` cached ones, or 60 log-mel frames."""
    rng = np.random.default_rng(tokens * 10 + past)
    feeds = {}
    for arg in session.get_inputs():
        if arg.name == "input_features":
            feeds[arg.name] = rng.standard_normal((2, 80, 3000)).astype(np.float32)
        elif arg.name == "input_ids":
            feeds[arg.name] = rng.integers(0, 50000, (2, tokens), dtype=np.int64)
        elif arg.name == "encoder_hidden_states":
            feeds[arg.name] = rng.standard_normal((2, ENCODER_FRAMES, HEADS * HEAD_SIZE)).astype(np.float32)
        else:
            length = ENCODER_FRAMES if ".encoder." in arg.name else past
            feeds[arg.name] = rng.standard_normal((2, HEADS, length, HEAD_SIZE)).astype(np.float32)
    return feeds


@pytest.mark.parametrize("graph, fused, tokens, past", [
    ("encoder_model.onnx", 2, 0, 0),
    ("decoder_model.onnx", 4, 3, 0),  # the prompt: three tokens, causal
    ("decoder_with_past_model.onnx", 4, 1, 5),  # a step
    ("decoder_with_past_model.onnx", 4, 3, 5),  # three tokens onto the cache: causal past the cache
])
def test_each_attention_becomes_one_node_that_computes_what_the_export_did(tiny_whisper_onnx, graph, fused, tokens, past):
    import onnx

    from asr_engines.engines.passes.attention import fuse_attention_model

    model = onnx.load(str(tiny_whisper_onnx / graph))
    exported = _session(model)
    feeds = _feeds(exported, tokens, past)
    expected = exported.run(None, feeds)
    nodes = len(model.graph.node)
    assert fuse_attention_model(model, HEADS) == fused
    onnx.checker.check_model(model)
    attentions = [node for node in model.graph.node if node.op_type == "MultiHeadAttention"]
    assert len(attentions) == fused and not any(node.op_type == "Softmax" for node in model.graph.node)
    assert len(model.graph.node) <= nodes - 20 * fused  # the shape arithmetic, masks and transposes went with them
    causal = [node.name for node in attentions if any(a.name == "unidirectional" and a.i == 1 for a in node.attribute)]
    assert len(causal) == (0 if graph.startswith("encoder") else fused // 2)  # the decoders' self-attentions
    assert all("self_attn" in name for name in causal)
    outputs = _session(model).run(None, feeds)
    for before, after in zip(expected, outputs):  # the cache's present outputs among them
        np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4)


def test_an_attention_whose_mask_reads_an_input_stays_as_exported(tiny_whisper_onnx):
    """Only a mask built from shapes alone is taken as the causal one: one fed by values keeps its attention."""
    import onnx
    from onnx import TensorProto, helper

    from asr_engines.engines.passes.attention import fuse_attention_model

    model = onnx.load(str(tiny_whisper_onnx / "decoder_model.onnx"))
    softmax = next(node for node in model.graph.node if node.op_type == "Softmax")
    masked = next(node for node in model.graph.node if softmax.input[0] in node.output)
    assert masked.op_type == "Add"
    model.graph.input.append(helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["batch_size", 1, 1, 1]))
    model.graph.node.append(helper.make_node("Add", [masked.input[1], "bias"], ["biased_mask"]))
    masked.input[1] = "biased_mask"
    assert fuse_attention_model(model, HEADS) == 3
    assert softmax.name in {node.name for node in model.graph.node}


def test_onnx_runtimes_fp32_and_cpu_int8_engines_fuse_and_tensorrts_input_does_not(tiny_whisper_engines):
    build = {variant: json.loads((tiny_whisper_engines / f"tiny-whisper-{variant}.json").read_text())["build"]
             for variant in ("fp32", "int8", "int8-qdq")}
    expected = {"encoder": 2, "decoder": 4, "decoder_with_past": 4}
    assert {part: details.get("fused_attention") for part, details in build["fp32"].items()} == expected
    assert {part: details.get("fused_attention") for part, details in build["int8"].items()} == expected
    assert not any("fused_attention" in details for details in build["int8-qdq"].values())


def test_a_mask_from_shapes_is_taken_as_causal_only_in_a_self_attention(tiny_whisper_onnx):
    import onnx
    from onnx import helper

    from asr_engines.engines.passes.attention import fuse_attention_model

    model = onnx.load(str(tiny_whisper_onnx / "decoder_model.onnx"))
    softmaxes = [node for node in model.graph.node if node.op_type == "Softmax"]
    producers = {output: node for node in model.graph.node for output in node.output}
    causal = producers[softmaxes[0].input[0]].input[1]  # the first self-attention's mask, built from shapes
    cross = next(node for node in softmaxes if "encoder_attn" in node.name)
    model.graph.node.append(helper.make_node("Add", [cross.input[0], causal], ["masked_cross_scores"]))
    cross.input[0] = "masked_cross_scores"
    assert fuse_attention_model(model, HEADS) == 3
    assert cross.name in {node.name for node in model.graph.node}
