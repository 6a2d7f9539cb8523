"""TensorRTBuilder.recipe against the real Polygraphy, with `tensorrt` made from each version's snapshot of
NVIDIA's bindings (TensorRT itself exists on no machine of this project). Polygraphy's loaders are lazy, so
they are made here exactly as on a Jetson: every argument we give them must be one they take, they must
carry our profile and flags, and every TensorRT name touched must exist in that version. The network
postprocessors run on a stand-in network made from the real exported graph. What TensorRT then does with
all this is checked by `make check-device` on real hardware."""

import sys

import numpy as np
import pytest

pytest.importorskip("polygraphy")

from tensorrt_snapshot import SnapshotModule, network_from_onnx  # noqa: E402

from asr_engines.calibration.stream import calibration_stream  # noqa: E402
from asr_engines.engines.builder import BuilderUnavailable, GraphJob  # noqa: E402
from asr_engines.engines.trt.options import TensorRTOptions  # noqa: E402
from asr_engines.families import GraphPart  # noqa: E402
from asr_engines.features import CTCFrontEnd  # noqa: E402
from asr_engines.variants import Variant  # noqa: E402

MODEL = GraphPart("model", "model.onnx")


def reset_polygraphy_tensorrt() -> None:
    """Polygraphy's lazy `tensorrt` keeps the first module it imported: let it import the current one."""
    for name, module in list(sys.modules.items()):
        if name.startswith("polygraphy"):
            for value in vars(module).values():
                if type(value).__name__ == "LazyModule":
                    object.__setattr__(value, "module", None)


@pytest.fixture
def builder_for(monkeypatch):
    """A TensorRTBuilder over the snapshot of `version` (a GPU with 6 GB free, as an idle Orin Nano)."""

    def make(version: str, shown_version: str | None = None, **options):
        module = SnapshotModule(version)
        if shown_version:
            module.__version__ = shown_version
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        reset_polygraphy_tensorrt()
        import asr_engines.engines.trt.builder as tensorrt_build

        monkeypatch.setattr(tensorrt_build, "_free_device_bytes", lambda: 6 << 30)
        return tensorrt_build.TensorRTBuilder(TensorRTOptions(profile_s=(2.0, 4.0, 10.0), **options)), module

    yield make
    reset_polygraphy_tensorrt()


def job(onnx_dir, tmp_path, variant, stream=None, name="m") -> GraphJob:
    staging = tmp_path / "staging"
    staging.mkdir(exist_ok=True)
    return GraphJob(onnx_dir, "ctc", MODEL, variant, staging / f"{name}-{variant}.plan", stream, tmp_path)


def stream_of(utterances, seconds):
    return calibration_stream(utterances, CTCFrontEnd(), count=4, noisy_fraction=0.5, length_s=seconds)


def test_fp32_and_fp16_recipes(builder_for, tiny_onnx, tmp_path):
    builder, trt = builder_for("8.6.1", timing_cache=tmp_path / "timing.cache")
    fp32 = builder.recipe(job(tiny_onnx, tmp_path, Variant.FP32))
    assert fp32.config.tf32 is False and not fp32.config.fp16 and not fp32.config.int8
    (profile,) = fp32.config.profiles
    assert profile["input_values"].min == (1, 32000) and profile["input_values"].opt == (1, 64000)
    assert profile["input_values"].max == (1, 160000)
    assert fp32.config.memory_pool_limits == {trt.MemoryPoolType.WORKSPACE: 3 << 30}
    assert fp32.config.timing_cache_path is None  # none written yet
    assert fp32.onnx_path == tiny_onnx / "model.onnx" and fp32.int8_mode is None
    assert fp32.network.strongly_typed is False  # <= 10: weakly typed; no flag passed

    (tmp_path / "timing.cache").write_bytes(b"cache")
    fp16 = builder.recipe(job(tiny_onnx, tmp_path, Variant.FP16))
    assert fp16.config.fp16 and fp16.config.precision_constraints == "obey"
    assert fp16.config.timing_cache_path == str(tmp_path / "timing.cache")
    assert type(fp16.network).__name__ == "PostprocessNetwork"  # wraps the parser with the pinning below


def test_fp16_pins_only_floating_point_norms_and_softmax(builder_for, tiny_onnx, tmp_path):
    """On the real exported graph: norms and softmax (by type or node name) are pinned to fp32 with their
    outputs; the group norm's Shape/Cast/Constant layers, which match the name rule, are left alone."""
    builder, trt = builder_for("8.6.1")
    recipe = builder.recipe(job(tiny_onnx, tmp_path, Variant.FP16))
    network, layers = network_from_onnx(tiny_onnx / "model.onnx", trt)
    recipe.network._func(network)
    by_name = {layer.name: layer for layer in layers}
    shape = by_name["/wav2vec2/feature_extractor/conv_layers.0/layer_norm/Shape"]
    assert shape.precision is None and shape.output_types == {}  # INT64 output: never pinned
    pinned = {layer.name for layer in layers if layer.precision is trt.float32}
    norms = {layer.name for layer in layers if layer.type in (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX)}
    assert norms and norms <= pinned
    assert all(layer.output_types == dict.fromkeys(range(layer.num_outputs), trt.float32) for layer in layers if layer.name in pinned)
    assert not any(layer.type in (trt.LayerType.SHAPE, trt.LayerType.CAST, trt.LayerType.CONSTANT) for layer in layers
                   if layer.name in pinned)
    assert all("norm" in name.lower() or "softmax" in name.lower() for name in pinned)


def test_implicit_int8_recipe_calibrates_at_opt(builder_for, tiny_onnx, tmp_path, utterances):
    builder, trt = builder_for("8.6.1")
    stream = stream_of(utterances, 5.0)
    recipe = builder.recipe(job(tiny_onnx, tmp_path, Variant.INT8, stream))
    assert recipe.int8_mode == "implicit" and recipe.config.int8 and recipe.config.fp16
    assert isinstance(recipe.config.calibrator, trt.IInt8EntropyCalibrator2)
    assert recipe.calibration_cache.parent == tmp_path / "staging"  # written in staging, published with the plan
    assert recipe.config.precision_constraints == "prefer" and type(recipe.network).__name__ == "PostprocessNetwork"
    first_conv = "/wav2vec2/feature_extractor/conv_layers.0/conv/Conv"
    assert recipe.details["float_nodes"][first_conv] == "reads the raw input"
    network, layers = network_from_onnx(tiny_onnx / "model.onnx", trt)
    recipe.network._func(network)
    by_name = {layer.name: layer for layer in layers}
    kept = set(recipe.details["float_nodes"])
    assert recipe.pinned_float_nodes == kept & set(by_name) and first_conv in recipe.pinned_float_nodes
    assert by_name[first_conv].precision is trt.float16
    assert by_name["/wav2vec2/encoder/layer_norm/LayerNormalization"].precision is trt.float32
    assert by_name["/wav2vec2/encoder/layers.0/Add"].precision is trt.float16  # a residual Add
    assert by_name["/wav2vec2/feature_extractor/conv_layers.0/layer_norm/Shape"].precision is None
    matmuls = [layer for layer in layers if layer.type is trt.LayerType.MATRIX_MULTIPLY]
    assert all(layer.precision is (trt.float16 if layer.name in kept else None) for layer in matmuls)
    with pytest.raises(ValueError, match="needs a calibration stream"):
        builder.recipe(job(tiny_onnx, tmp_path, Variant.INT8))


def test_explicit_int8_recipe_builds_from_qdq_onnx(builder_for, tiny_onnx, tmp_path, utterances):
    import onnx

    builder, _ = builder_for("10.3.0")
    recipe = builder.recipe(job(tiny_onnx, tmp_path, Variant.INT8, stream_of(utterances, 3.0)))
    assert recipe.int8_mode == "explicit" and recipe.config.calibrator is None and recipe.config.int8 and recipe.config.fp16
    assert recipe.onnx_path == tmp_path / "staging" / "m-int8.qdq.onnx" and recipe.network.path == str(recipe.onnx_path)
    graph = onnx.load(str(recipe.onnx_path)).graph
    scales = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    zero_points = [scales[node.input[2]] for node in graph.node if node.op_type == "QuantizeLinear" and len(node.input) > 2]
    assert zero_points and all(np.all(z == 0) and z.dtype == np.int8 for z in zero_points)  # symmetric, as TensorRT wants


def test_tensorrt_11_is_strongly_typed_without_flags(builder_for, tiny_onnx, tmp_path, utterances):
    builder, _ = builder_for("11.4.0.106")
    recipe = builder.recipe(job(tiny_onnx, tmp_path, Variant.FP16))
    assert recipe.strongly_typed and recipe.network.strongly_typed is False  # always typed in 11: the flag is not passed
    assert not recipe.config.fp16 and recipe.config.precision_constraints is None  # precision comes from the ONNX
    assert recipe.onnx_path == tmp_path / "staging" / "m-fp16.fp16.onnx" and recipe.onnx_path.is_file()
    int8 = builder.recipe(job(tiny_onnx, tmp_path, Variant.INT8, stream_of(utterances, 3.0)))
    assert int8.int8_mode == "explicit" and not int8.config.int8 and not int8.config.fp16
    implicit, _ = builder_for("11.4.0.106", int8_mode="implicit")
    with pytest.raises(ValueError, match="removed in 11"):
        implicit.recipe(job(tiny_onnx, tmp_path, Variant.INT8, stream_of(utterances, 3.0)))


def test_tensorrt_older_than_8_6_is_refused_in_one_line(builder_for):
    with pytest.raises(BuilderUnavailable, match=r"TensorRT 8.5.2.2 is too old: .*no LayerNormalization.*>= 8.6"):
        builder_for("8.6.1", shown_version="8.5.2.2")


def test_calibration_cache_is_keyed_by_what_it_was_made_from(builder_for, tiny_onnx, tmp_path, utterances):
    """A cache is reused only for the same ONNX, calibration stream and TensorRT version: TensorRT would
    otherwise skip calibration and keep scales from other data while the manifest describes the new stream."""
    builder, _ = builder_for("8.6.1")
    stream = stream_of(utterances, 3.0)
    first = builder.recipe(job(tiny_onnx, tmp_path, Variant.INT8, stream)).calibration_cache
    assert first.name.startswith("m-int8.") and first.name.endswith(".calibration.cache") and not first.exists()
    (tmp_path / first.name).write_text("TRT-8601-EntropyCalibration2\ninput_values: 3c010a14\n")  # published by a build
    again = builder.recipe(job(tiny_onnx, tmp_path, Variant.INT8, stream))
    assert again.calibration_cache == first and first.read_text().startswith("TRT-8601")  # copied into staging
    assert again.details["calibration_cache"] == {"file": first.name, "reused": True}
    other_stream = calibration_stream(utterances, CTCFrontEnd(), count=4, noisy_fraction=0.5, length_s=3.0, seed=7)
    assert builder.recipe(job(tiny_onnx, tmp_path, Variant.INT8, other_stream)).calibration_cache.name != first.name
    upgraded, _ = builder_for("10.3.0", int8_mode="implicit")
    assert upgraded.recipe(job(tiny_onnx, tmp_path, Variant.INT8, stream)).calibration_cache.name != first.name


@pytest.mark.parametrize("part", ["encoder", "decoder", "decoder_with_past"])
def test_fp16_pinning_on_whispers_graphs(builder_for, tiny_whisper_onnx, tmp_path, part):
    """Whisper's exported graphs, as onnx-tensorrt would name and type their layers: every LayerNorm and Softmax
    pinned to fp32, no shape, cast or constant layer touched, nothing else pinned."""
    builder, trt = builder_for("10.3.0")
    graph_job = GraphJob(tiny_whisper_onnx, "whisper", GraphPart(part, f"{part}_model.onnx", part == "encoder"), Variant.FP16,
                         tmp_path / f"w-fp16.{part}.plan", None, tmp_path)
    recipe = builder.recipe(graph_job)
    network, layers = network_from_onnx(tiny_whisper_onnx / f"{part}_model.onnx", trt)
    recipe.network._func(network)
    pinned = [layer for layer in layers if layer.precision is trt.float32]
    fragile = [layer for layer in layers if layer.type in (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX)]
    assert fragile and all(layer in pinned for layer in fragile)
    assert all(layer.type in (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX) or "norm" in layer.name.lower()
               or "softmax" in layer.name.lower() for layer in pinned)
    untouched = (trt.LayerType.SHAPE, trt.LayerType.CAST, trt.LayerType.CONSTANT)
    assert all(layer.precision is None and not layer.output_types for layer in layers if layer.type in untouched)


@pytest.fixture(scope="module")
def real_exports(tmp_path_factory):
    """The graphs users build: wav2vec2-base (random weights, its real architecture) and whisper tiny.en."""
    from conftest import SHARED_WHISPER

    from asr_engines.export import export_onnx, resolve_model

    folders = {}
    for name, model in (("wav2vec2-base", "random:wav2vec2-base"), ("whisper-tiny.en", str(SHARED_WHISPER))):
        if name.startswith("whisper") and not SHARED_WHISPER.is_dir():
            continue
        folders[name] = tmp_path_factory.mktemp("real") / name
        export_onnx(resolve_model(model), folders[name], check=False)
    return folders


@pytest.mark.slow
@pytest.mark.parametrize(("model", "graph"), [("wav2vec2-base", "model.onnx"), ("whisper-tiny.en", "encoder_model.onnx"),
                                              ("whisper-tiny.en", "decoder_with_past_model.onnx")])
def test_pinning_on_the_real_exported_graphs(builder_for, real_exports, tmp_path, model, graph):
    """On the full-size exports: the layers the name rule matches that compute no floats (the group norm's
    Shape with its INT64 output) are never pinned, every norm and softmax is."""
    if model not in real_exports:
        pytest.skip("no whisper tiny.en weights beside the clone")
    builder, trt = builder_for("10.3.0")
    family, part = ("ctc", "model") if model.startswith("wav2vec2") else ("whisper", graph.removesuffix("_model.onnx"))
    recipe = builder.recipe(GraphJob(real_exports[model], family, GraphPart(part, graph), Variant.FP16,
                                     tmp_path / f"{model}-fp16.plan", None, tmp_path))
    network, layers = network_from_onnx(real_exports[model] / graph, trt)
    recipe.network._func(network)
    matched = [layer for layer in layers if "norm" in layer.name.lower() or "softmax" in layer.name.lower()]
    not_float = [layer for layer in matched if any(layer.get_output(i).dtype not in (trt.float32, trt.float16)
                                                   for i in range(layer.num_outputs))]
    assert all(layer.precision is None and not layer.output_types for layer in not_float)
    if model.startswith("wav2vec2"):
        assert "/wav2vec2/feature_extractor/conv_layers.0/layer_norm/Shape" in {layer.name for layer in not_float}
    fragile = [layer for layer in layers if layer.type in (trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX)]
    assert fragile and all(layer.precision is trt.float32 for layer in fragile)
