"""TensorRTBuilder.recipe against the real Polygraphy, with a stand-in `tensorrt` module (TensorRT itself
exists on no machine of this project). Polygraphy's loaders are lazy, so they are made here exactly as on a
Jetson: every argument we give them must be one they take, and they must carry our profile and flags. What
TensorRT then does with them is checked by `make check-device` on real hardware."""

import sys
import types

import numpy as np
import pytest

pytest.importorskip("polygraphy")

from calibration.stream import calibration_stream  # noqa: E402
from common.features import CTCFrontEnd  # noqa: E402
from engines.builder import BuildOptions  # noqa: E402
from engines.profiles import dimension_ranges  # noqa: E402


class StandInCalibratorBase:
    """Stands in for trt.IInt8EntropyCalibrator2 (Polygraphy subclasses the class it is given)."""

    def __init__(self):
        pass


def stand_in_tensorrt(version: str) -> types.ModuleType:
    """A stand-in `tensorrt` module with the names the builder and Polygraphy's loaders touch before a build."""
    module = types.ModuleType("tensorrt")
    module.__version__ = version
    module.MemoryPoolType = types.SimpleNamespace(WORKSPACE="WORKSPACE")
    module.ProfilingVerbosity = types.SimpleNamespace(DETAILED="DETAILED")
    module.IInt8EntropyCalibrator2 = StandInCalibratorBase
    module.IInt8LegacyCalibrator = type("IInt8LegacyCalibrator", (), {})
    module.IInt8Calibrator = type("IInt8Calibrator", (), {})
    module.LayerType = types.SimpleNamespace(NORMALIZATION="NORMALIZATION", SOFTMAX="SOFTMAX", ELEMENTWISE="ELEMENTWISE")
    module.float32, module.float16 = "float32", "float16"
    return module


@pytest.fixture
def builder_for(monkeypatch):
    def make(version: str):
        monkeypatch.setitem(sys.modules, "tensorrt", stand_in_tensorrt(version))
        from engines.tensorrt_build import TensorRTBuilder

        monkeypatch.setattr(TensorRTBuilder, "_free_device_bytes", lambda self: 6 << 30)  # an Orin Nano, idle
        return TensorRTBuilder()

    return make


def options_for(onnx_dir, tmp_path, **extra) -> BuildOptions:
    dimensions = dimension_ranges("ctc", "model", onnx_dir, (2.0, 4.0, 9.5))
    return BuildOptions(dimensions=dimensions, timing_cache=tmp_path / "timing.cache", **extra)


def test_fp32_and_fp16_recipes(builder_for, tiny_onnx, tmp_path):
    builder = builder_for("8.6.2")
    fp32 = builder.recipe(tiny_onnx / "model.onnx", tmp_path / "m-fp32.plan", "fp32", None, options_for(tiny_onnx, tmp_path))
    assert fp32.config.tf32 is False and not fp32.config.fp16 and not fp32.config.int8
    (profile,) = fp32.config.profiles
    assert profile["input_values"].min == (1, 32000) and profile["input_values"].opt == (1, 64000)
    assert profile["input_values"].max == (1, 160000)
    assert fp32.config.memory_pool_limits == {"WORKSPACE": 3 << 30}
    assert fp32.config.timing_cache_path is None  # none written yet
    assert fp32.onnx_path == tiny_onnx / "model.onnx" and fp32.int8_mode is None

    (tmp_path / "timing.cache").write_bytes(b"cache")
    fp16 = builder.recipe(tiny_onnx / "model.onnx", tmp_path / "m-fp16.plan", "fp16", None, options_for(tiny_onnx, tmp_path))
    assert fp16.config.fp16 and fp16.config.precision_constraints == "obey"
    assert fp16.config.timing_cache_path == str(tmp_path / "timing.cache")
    assert type(fp16.network).__name__ == "PostprocessNetwork"  # wraps the parser with the pinning below


class StandInLayer:
    """Stands in for a trt.ILayer: type, name, outputs (with dtypes), and the precision settings the builder makes."""

    def __init__(self, layer_type, name, outputs=1, dtype="float32"):
        self.type, self.name, self.num_outputs = layer_type, name, outputs
        self.precision, self.output_types = None, {}
        self._output = types.SimpleNamespace(dtype=dtype)

    @property
    def precision_is_set(self):
        return self.precision is not None

    def get_output(self, index):
        return self._output

    def set_output_type(self, index, dtype):
        self.output_types[index] = dtype


def test_fp16_pins_norms_and_softmax_to_fp32(builder_for):
    builder = builder_for("8.6.2")
    layers = [StandInLayer("NORMALIZATION", "/encoder/layer_norm/LayerNormalization"),
              StandInLayer("SOFTMAX", "/attention/Softmax"),
              StandInLayer("REDUCE", "/feature_extractor/conv_layers.0/layer_norm/ReduceMean", outputs=2),  # opset 17 split
              StandInLayer("MATMUL", "/encoder/layers.0/attention/q_proj/MatMul")]
    assert builder._pin_fragile_layers_fp32(layers) is layers
    assert [layer.precision for layer in layers] == ["float32", "float32", "float32", None]
    assert layers[2].output_types == {0: "float32", 1: "float32"} and layers[3].output_types == {}


def test_implicit_int8_recipe_calibrates_at_opt(builder_for, tiny_onnx, tmp_path, utterances):
    builder = builder_for("8.5.2.2")
    stream = calibration_stream(utterances, CTCFrontEnd(), count=4, noisy_fraction=0.5, length_s=5.0)
    recipe = builder.recipe(tiny_onnx / "model.onnx", tmp_path / "m-int8.plan", "int8", stream, options_for(tiny_onnx, tmp_path))
    assert recipe.int8_mode == "implicit" and recipe.config.int8 and recipe.config.fp16
    assert isinstance(recipe.config.calibrator, StandInCalibratorBase)
    assert recipe.calibration_cache == tmp_path / "m-int8.calibration.cache"
    assert recipe.config.precision_constraints == "prefer" and type(recipe.network).__name__ == "PostprocessNetwork"
    first_conv = "/wav2vec2/feature_extractor/conv_layers.0/conv/Conv"
    assert recipe.details["float_nodes"][first_conv] == "reads the raw input"
    layers = [StandInLayer("CONVOLUTION", first_conv),
              StandInLayer("CONVOLUTION", "/wav2vec2/feature_extractor/conv_layers.1/conv/Conv"),
              StandInLayer("NORMALIZATION", "/wav2vec2/encoder/layer_norm/LayerNormalization"),
              StandInLayer("ELEMENTWISE", "/wav2vec2/encoder/layers.0/Add"), StandInLayer("ELEMENTWISE", "/Equal", dtype="bool"),
              StandInLayer("MATMUL", "/wav2vec2/encoder/layers.0/attention/q_proj/MatMul")]
    kept, pinned = set(recipe.details["float_nodes"]), set()
    builder._keep_layers_out_of_int8(layers, kept, pinned)
    assert pinned == kept & {layer.name for layer in layers} and first_conv in pinned
    expected = ["float16" if layer.name in kept else None for layer in layers]  # random weights: some are fragile
    expected[:5] = ["float16", expected[1], "float32", "float16", None]  # first conv, norm, residual Add, bool Equal
    assert [layer.precision for layer in layers] == expected
    with pytest.raises(ValueError, match="needs a calibration stream"):
        builder.recipe(tiny_onnx / "model.onnx", tmp_path / "m-int8.plan", "int8", None, options_for(tiny_onnx, tmp_path))


def test_explicit_int8_recipe_builds_from_qdq_onnx(builder_for, tiny_onnx, tmp_path, utterances):
    import onnx

    builder = builder_for("10.3.0")
    stream = calibration_stream(utterances, CTCFrontEnd(), count=4, noisy_fraction=0.5, length_s=3.0)
    recipe = builder.recipe(tiny_onnx / "model.onnx", tmp_path / "m-int8.plan", "int8", stream, options_for(tiny_onnx, tmp_path))
    assert recipe.int8_mode == "explicit" and recipe.config.calibrator is None and recipe.config.int8
    assert recipe.onnx_path == tmp_path / "m-int8.qdq.onnx" and recipe.network.path == str(recipe.onnx_path)
    graph = onnx.load(str(recipe.onnx_path)).graph
    scales = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    zero_points = [scales[node.input[2]] for node in graph.node if node.op_type == "QuantizeLinear" and len(node.input) > 2]
    assert zero_points and all(np.all(z == 0) and z.dtype == np.int8 for z in zero_points)  # symmetric, as TensorRT wants


def test_tensorrt_11_is_strongly_typed(builder_for, tiny_onnx, tmp_path):
    builder = builder_for("11.0.0")
    recipe = builder.recipe(tiny_onnx / "model.onnx", tmp_path / "m-fp16.plan", "fp16", None, options_for(tiny_onnx, tmp_path))
    assert recipe.strongly_typed and recipe.network.strongly_typed
    assert not recipe.config.fp16 and recipe.config.precision_constraints is None  # precision comes from the ONNX
    assert recipe.onnx_path == tmp_path / "m-fp16.fp16.onnx" and recipe.onnx_path.is_file()
    with pytest.raises(ValueError, match="removed in 11"):
        builder.recipe(tiny_onnx / "model.onnx", tmp_path / "m.plan", "int8", None,
                       options_for(tiny_onnx, tmp_path, int8_mode="implicit"))
