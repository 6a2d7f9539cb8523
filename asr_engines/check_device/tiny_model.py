"""A small CTC model written with onnx.helper, laid out as `asr-engines export` lays out an export folder.

It has what decides how TensorRT builds a speech model at each precision, at a size that builds in seconds
on an 8 GB board: strided convolutions over the raw waveform (the first one reads the audio), GELU, a
LayerNormalization (opset 17), self-attention with its Softmax, residual Adds and a MatMul to a character
vocabulary. Random weights (seeded): its outputs are compared between backends, never read as text. No
torch, transformers or Optimum: a Jetson venv from `make install-jetson` can make it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

#: wav2vec2-base-960h's 32 English characters, in id order.
VOCABULARY = ["<pad>", "<s>", "</s>", "<unk>", "|", *"ETAONIHSRDLUMWCFGYPBVK'XJQZ"]
CHANNELS = 64
OPSET = 17


def tiny_ctc_graph(seed: int = 0):
    """input_values [batch, samples] -> logits [batch, frames, 32], 50 frames a second (a stride of 320 samples)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = {}

    def weight(name: str, shape: tuple, scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[0]
        weights[name] = (rng.standard_normal(shape) * (scale or 1 / np.sqrt(fan_in))).astype(np.float32)
        return name

    def constant(name: str, value) -> str:
        weights[name] = np.asarray(value)
        return name

    nodes = [
        helper.make_node("Unsqueeze", ["input_values", constant("axis1", np.array([1], np.int64))], ["audio"], name="/feature/Unsqueeze"),
        helper.make_node("Conv", ["audio", weight("conv0.w", (CHANNELS, 1, 10)), weight("conv0.b", (CHANNELS,), 0.01)], ["c0"],
                         strides=[5], name="/feature/conv_layers.0/conv/Conv"),
        *_gelu("c0", "g0", "/feature/conv_layers.0/activation"),
        helper.make_node("Conv", ["g0", weight("conv1.w", (CHANNELS, CHANNELS, 3)), weight("conv1.b", (CHANNELS,), 0.01)], ["c1"],
                         strides=[2], name="/feature/conv_layers.1/conv/Conv"),
        *_gelu("c1", "g1", "/feature/conv_layers.1/activation"),
        helper.make_node("Conv", ["g1", weight("conv2.w", (CHANNELS, CHANNELS, 2)), weight("conv2.b", (CHANNELS,), 0.01)], ["c2"],
                         strides=[32], name="/feature/conv_layers.2/conv/Conv"),
        helper.make_node("Transpose", ["c2"], ["frames"], perm=[0, 2, 1], name="/feature/Transpose"),
        helper.make_node("LayerNormalization", ["frames", constant("ln.g", np.ones(CHANNELS, np.float32)),
                                                constant("ln.b", np.zeros(CHANNELS, np.float32))], ["x"],
                         axis=-1, epsilon=1e-5, name="/encoder/layer_norm/LayerNormalization"),
    ]
    for projection in ("q", "k", "v"):
        nodes.append(helper.make_node("MatMul", ["x", weight(f"{projection}.w", (CHANNELS, CHANNELS))], [projection],
                                      name=f"/encoder/attention/{projection}_proj/MatMul"))
    nodes += [
        helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1], name="/encoder/attention/Transpose"),
        helper.make_node("MatMul", ["q", "kt"], ["scores_raw"], name="/encoder/attention/MatMul"),
        helper.make_node("Mul", ["scores_raw", constant("scale", np.float32(1 / np.sqrt(CHANNELS)))], ["scores"],
                         name="/encoder/attention/Mul"),
        helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1, name="/encoder/attention/Softmax"),
        helper.make_node("MatMul", ["probabilities", "v"], ["attended"], name="/encoder/attention/MatMul_1"),
        helper.make_node("Add", ["x", "attended"], ["residual"], name="/encoder/Add"),
        helper.make_node("MatMul", ["residual", weight("head.w", (CHANNELS, len(VOCABULARY)))], ["head"], name="/lm_head/MatMul"),
        helper.make_node("Add", ["head", weight("head.b", (len(VOCABULARY),), 0.01)], ["logits"], name="/lm_head/Add"),
    ]
    graph = helper.make_graph(
        nodes, "tiny-ctc",
        [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, ["batch_size", "sequence_length"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", "frames", len(VOCABULARY)])],
        [numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="asr-engines check_device")
    model.ir_version = 8  # what TensorRT 8.6's parser and every ONNX Runtime here read
    onnx.checker.check_model(model)
    return model


def _gelu(source: str, target: str, name: str) -> list:
    """GELU as the exporters write it: 0.5 * x * (1 + erf(x / sqrt 2))."""
    from onnx import helper, numpy_helper

    def scalar(value: float, suffix: str):
        return helper.make_node("Constant", [], [f"{target}.{suffix}"], value=numpy_helper.from_array(np.float32(value)),
                                name=f"{name}/Constant_{suffix}")

    return [
        scalar(1 / np.sqrt(2), "inv_sqrt2"), scalar(1.0, "one"), scalar(0.5, "half"),
        helper.make_node("Mul", [source, f"{target}.inv_sqrt2"], [f"{target}.scaled"], name=f"{name}/Mul"),
        helper.make_node("Erf", [f"{target}.scaled"], [f"{target}.erf"], name=f"{name}/Erf"),
        helper.make_node("Add", [f"{target}.erf", f"{target}.one"], [f"{target}.plus"], name=f"{name}/Add"),
        helper.make_node("Mul", [source, f"{target}.plus"], [f"{target}.gated"], name=f"{name}/Mul_1"),
        helper.make_node("Mul", [f"{target}.gated", f"{target}.half"], [target], name=f"{name}/Mul_2"),
    ]


def write_tiny_export(folder: Path, name: str = "check") -> Path:
    """The tiny model as an export folder (model.onnx, export.json, processor files) that `engines` builds from."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(tiny_ctc_graph(), str(folder / "model.onnx"))
    files = {
        "export.json": {"model": name, "source": "check_device/tiny_model.py", "family": "ctc", "opset": OPSET,
                        "files": ["model.onnx"], "max_abs_diff": None},
        "preprocessor_config.json": {"sampling_rate": 16000, "do_normalize": True, "feature_size": 1},
        "vocab.json": {token: index for index, token in enumerate(VOCABULARY)},
        "tokenizer_config.json": {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                                  "word_delimiter_token": "|"},
    }
    for file, content in files.items():
        (folder / file).write_text(json.dumps(content, indent=1))
    return folder
