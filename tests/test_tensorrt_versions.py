"""Every TensorRT name our code touches exists in each version whose code path reaches it.

For each snapshot (8.6.1, 10.3.0 as on JetPack 6.1/6.2, 10.13, 11.4) the paths that version takes are run
against `tensorrt` made from that snapshot (tests/tensorrt_snapshot.py): the recipe of every variant and INT8
mode, the network postprocessors on the real exported graph, the build up to the plan's inspection and IO
listing, and the runtime loading the plan and running it. A name a version lacks fails its run. Then every
`trt.X` and `trt.X.Y` written in the TensorRT files (found from the code, so a new use needs no list) must
have been reached by some version's run: a name no run reaches would be unchecked.
"""

from __future__ import annotations

import ast
import hashlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("polygraphy")

from tensorrt_snapshot import VERSIONS, Guarded, SnapshotModule, network_from_onnx  # noqa: E402
from test_tensorrt_recipe import reset_polygraphy_tensorrt  # noqa: E402

from asr_engines.calibration.stream import calibration_stream  # noqa: E402
from asr_engines.engines.builder import GraphJob  # noqa: E402
from asr_engines.engines.trt.options import TensorRTOptions  # noqa: E402
from asr_engines.families import GraphPart  # noqa: E402
from asr_engines.features import CTCFrontEnd  # noqa: E402
from asr_engines.manifest import EngineManifest, write_manifest  # noqa: E402
from asr_engines.variants import Variant  # noqa: E402
from stand_ins.tensorrt import StandInContext, StandInDeviceMemory, StandInPlan  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TENSORRT_FILES = [*(ROOT / "engines" / "trt").glob("*.py"), ROOT / "runtime" / "tensorrt_engine.py"]
INSPECTOR = Path(__file__).parent / "fixtures" / "inspector"
#: version -> (variant, --int8-mode) of every build path that version takes.
PATHS = {
    "8.6.1": [(Variant.FP32, "auto"), (Variant.FP16, "auto"), (Variant.INT8, "auto")],  # auto: implicit
    "10.3.0": [(Variant.FP32, "auto"), (Variant.FP16, "auto"), (Variant.INT8, "auto"), (Variant.INT8, "implicit")],
    "10.13.3.9": [(Variant.FP32, "auto"), (Variant.FP16, "auto"), (Variant.INT8, "auto"), (Variant.INT8, "implicit")],
    "11.4.0.106": [(Variant.FP32, "auto"), (Variant.FP16, "auto"), (Variant.INT8, "auto")],
}
HERE = {"gpu": "Orin", "compute_capability": "8.7", "multiprocessors": 8, "gpu_memory_mb": 7620}
TOUCHED: dict[str, set[tuple[str, str]]] = {}


class SnapshotPlan(StandInPlan):
    """A deserialized plan as `version` presents it: TensorIOMode and DataType members, a guarded execution
    context and engine inspector."""

    def __init__(self, onnx_path: Path, profile: dict, module: SnapshotModule, memory: StandInDeviceMemory):
        has_int64 = "INT64" in module.members("DataType")
        super().__init__(onnx_path, profile)
        if has_int64:  # 10 and later keep int64 IO; the stand-in plan declares int32, as 8.x does
            import onnx

            graph = onnx.load(str(onnx_path), load_external_data=False).graph
            for value in list(graph.input) + list(graph.output):
                if value.type.tensor_type.elem_type == onnx.TensorProto.INT64:
                    mode, _, dims = self.tensors[value.name]
                    self.tensors[value.name] = (mode, np.dtype(np.int64), dims)
        self.module, self.memory = module, memory
        layout = {"8": "8.6", "10": "10", "11": "11"}[module.__version__.split(".")[0]]
        self.inspector = json.loads((INSPECTOR / f"tensorrt-{layout}-int8.json").read_text())

    def get_tensor_mode(self, name: str):
        return self.module.TensorIOMode.INPUT if super().get_tensor_mode(name) == "INPUT" else self.module.TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str):
        names = {np.float32: "FLOAT", np.float16: "HALF", np.int32: "INT32", np.int64: "INT64"}
        return getattr(self.module.DataType, names[super().get_tensor_dtype(name).type])

    def create_execution_context(self):
        return Guarded(StandInContext(self, self.memory), "IExecutionContext", self.module)

    def create_engine_inspector(self):
        inspector = types.SimpleNamespace(get_engine_information=lambda layer_format: json.dumps(self.inspector))
        return Guarded(inspector, "EngineInspector", self.module)


def run_version(version: str, onnx_dir: Path, stream, tmp_path: Path, monkeypatch) -> set[tuple[str, str]]:
    """Every build path of `version`, each plan loaded and run by the runtime; the names touched."""
    import polygraphy.backend.trt as polygraphy_trt

    import asr_engines.engines.trt.builder as tensorrt_build
    import asr_engines.runtime.tensorrt_engine as tensorrt_engine
    from asr_engines.engines.profiles import dimension_ranges, graph_profile

    module = SnapshotModule(version)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setitem(sys.modules, "pycuda", types.ModuleType("pycuda"))
    reset_polygraphy_tensorrt()
    memory = StandInDeviceMemory()
    profile = graph_profile(onnx_dir / "model.onnx", dimension_ranges("ctc", "model", onnx_dir, (), (2.0, 4.0, 10.0)))
    plans: dict[bytes, Path] = {}

    def build_plan(network, config, save_timing_cache=None):
        """The build, as far as it touches our code: the network postprocessor on the real graph."""
        if type(network).__name__ == "PostprocessNetwork":
            stand_in, _ = network_from_onnx(Path(network._network.path), module)
            network._func(stand_in)
        plan = f"plan {len(plans)}".encode()
        parsed = Path(getattr(network, "path", None) or network._network.path)
        plans[plan] = tmp_path / f"plan-{len(plans)}.onnx"  # TensorRT keeps the graph in the plan; the build deletes its ONNX
        plans[plan].write_bytes(parsed.read_bytes())
        return plan

    module.behaviours.update({
        "Logger": lambda severity: types.SimpleNamespace(),
        "Runtime": lambda logger: types.SimpleNamespace(
            deserialize_cuda_engine=lambda plan: Guarded(SnapshotPlan(plans.get(plan, onnx_dir / "model.onnx"), profile.shapes,
                                                                      module, memory), "ICudaEngine", module)),
    })
    monkeypatch.setattr(polygraphy_trt, "engine_bytes_from_network", build_plan)
    for target in (tensorrt_build, tensorrt_engine):
        monkeypatch.setattr(target, "gpu_identity", lambda: dict(HERE))
        monkeypatch.setattr(target, "l4t_release", lambda: "R36.4.3")
    monkeypatch.setattr(tensorrt_build, "_free_device_bytes", lambda: 6 << 30)
    monkeypatch.setattr(tensorrt_engine, "PycudaMemory", lambda: memory)

    for variant, int8_mode in PATHS[version]:
        builder = tensorrt_build.TensorRTBuilder(TensorRTOptions(profile_s=(2.0, 4.0, 10.0), int8_mode=int8_mode))
        staging = tmp_path / f"{version}-{variant}-{int8_mode}"
        staging.mkdir()
        job = GraphJob(onnx_dir, "ctc", GraphPart("model", "model.onnx"), variant, staging / "m.plan",
                       stream if variant == Variant.INT8 else None, staging)
        details = builder.build(job)
        assert details["tensorrt"] == module.__version__ and details["io"]["inputs"][0]["name"] == "input_values"
        write_manifest(staging / "m.json", EngineManifest(
            engine="m", model="m", family="ctc", precision=variant.precision, variant=variant, backend="tensorrt",
            front_end={"kind": "ctc", "input_name": "input_values", "do_normalize": True},
            decoder={"kind": "ctc", "vocabulary": ["<pad>", "|", "A"], "blank_id": 0, "word_delimiter": "|", "dropped_tokens": []},
            files={"model": "m.plan"}, build={"model": details},
            files_sha256={"m.plan": hashlib.sha256((staging / "m.plan").read_bytes()).hexdigest()}))
        engine = tensorrt_engine.load_tensorrt_engine(staging / "m.plan", variant=variant)
        logits = engine.run({"input_values": np.zeros((1, 3 * 16000), np.float32)})["logits"]
        assert logits.shape[0] == 1 and logits.shape[2] == 32
    reset_polygraphy_tensorrt()
    return module.recorder.touched


@pytest.mark.parametrize("version", VERSIONS)
def test_each_versions_paths_touch_only_names_it_has(version, tiny_onnx, utterances, tmp_path, monkeypatch):
    stream = calibration_stream(utterances, CTCFrontEnd(), count=2, noisy_fraction=0.5, length_s=3.0)
    TOUCHED[version] = run_version(version, tiny_onnx, stream, tmp_path, monkeypatch)
    assert ("ICudaEngine", "get_tensor_profile_shape") in TOUCHED[version]  # the runtime ran on it
    assert ("IExecutionContext", "execute_async_v3") in TOUCHED[version]


def test_a_name_a_version_lacks_fails_its_run(tiny_onnx, tmp_path, monkeypatch):
    """The snapshots bite: 11.4 has no ILayer.precision, which weakly typed pinning sets."""
    import asr_engines.engines.trt.builder as tensorrt_build

    module = SnapshotModule("11.4.0.106")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    network, _ = network_from_onnx(tiny_onnx / "model.onnx", module)
    with pytest.raises(AttributeError, match="TensorRT 11.4.0.106: ILayer has no 'precision'"):
        tensorrt_build._pin_fragile_layers_fp32(network)
    with pytest.raises(AttributeError, match="TensorRT 11.4.0.106 has no tensorrt.IInt8EntropyCalibrator2"):
        module.IInt8EntropyCalibrator2  # noqa: B018


def tensorrt_names_in_code() -> set[tuple[str, str]]:
    """Every `trt.X` (as ("tensorrt", X)) and `trt.X.Y` (as (X, Y)) written in the TensorRT files."""
    names = set()
    for path in TENSORRT_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt":
                if not node.attr.startswith("__"):  # __version__ is Python's, in every version
                    names.add(("tensorrt", node.attr))
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                  and isinstance(node.value.value, ast.Name) and node.value.value.id == "trt"):
                names.add((node.value.attr, node.attr))
    return names


def test_every_tensorrt_name_in_the_code_is_reached_by_some_version(tiny_onnx, utterances, tmp_path_factory, monkeypatch):
    for version in sorted(set(VERSIONS) - set(TOUCHED)):  # run on another xdist worker, or not run: run here
        stream = calibration_stream(utterances, CTCFrontEnd(), count=2, noisy_fraction=0.5, length_s=3.0)
        with monkeypatch.context() as patched:
            TOUCHED[version] = run_version(version, tiny_onnx, stream, tmp_path_factory.mktemp(version), patched)
    in_code = tensorrt_names_in_code()
    assert ("LayerType", "NORMALIZATION") in in_code and ("tensorrt", "nptype") in in_code  # the scan sees the code
    reached = set().union(*TOUCHED.values())
    assert sorted(in_code - reached) == []
