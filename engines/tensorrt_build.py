"""TensorRT plans from the exported ONNX, through Polygraphy's loaders (profiles, calibrator, timing cache,
TF32 and precision flags across TensorRT versions).

Written against the documented APIs of TensorRT 8.5 (JetPack 5), 8.6, 10.3 (JetPack 6) and 11; NOT RUN
in this project's CI or on its machines, which have no TensorRT. `make check-device` on a Jetson builds,
runs and compares all three precisions. Everything decided without TensorRT lives in tensorrt_settings.py
and is tested.

- fp32: TF32 off. fp16: LayerNorm/GroupNorm/Softmax layers pinned to fp32 (precision constraints obeyed;
  on TensorRT 11, strongly typed from an fp16 ONNX with those ops kept fp32).
- int8 implicit (TensorRT <= 10): IInt8EntropyCalibrator2 on the calibration stream at the profile's OPT
  shapes, calibration cache written beside the plan; only MatMul/Conv may run INT8 (norms and softmax fp32;
  residual Adds, the first conv and the nodes sensitivity.py finds fragile fp16, preferred).
- int8 explicit (TensorRT >= 10): built from the symmetric Q/DQ ONNX made from the same stream, fp16 allowed
  outside the Q/DQ pairs on 10.x; on 11 (strongly typed) those layers run fp32, as the ONNX says.
After the build the engine inspector counts layers per precision; an int8 build with no int8 layer fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from calibration.stream import CalibrationStream
from common.host import l4t_release
from engines.builder import BuilderUnavailable, BuildOptions
from engines.float16 import convert_fp16
from engines.profiles import ShapeProfile, graph_profile
from engines.quantize import INT8_FORMS, float_nodes, quantize_int8
from engines.tensorrt_settings import (
    calibration_batches,
    check_precision_counts,
    choose_int8_mode,
    count_layer_precisions,
    strongly_typed,
    workspace_bytes,
)

_FP32_LAYER_NAMES = re.compile(r"layer_?norm|group_?norm|instance_?norm|softmax", re.IGNORECASE)


@dataclass
class PlanRecipe:
    """What one plan is built from: Polygraphy's lazy network and config loaders and what they were made of."""

    network: object
    config: object
    profile: ShapeProfile
    onnx_path: Path  # the graph TensorRT parses: the export's, or a Q/DQ or fp16 copy written beside the plan
    details: dict
    int8_mode: str | None
    strongly_typed: bool
    calibration_cache: Path
    pinned_float_nodes: set[str]  # filled during the build: the float nodes found among the network's layers


class TensorRTBuilder:
    backend = "tensorrt"
    suffix = ".plan"
    isolate_builds = True

    def __init__(self) -> None:
        try:
            import tensorrt
        except ImportError:
            raise BuilderUnavailable("TensorRT's Python bindings are not installed (on a Jetson: make install-jetson)") from None
        try:
            import polygraphy  # noqa: F401
        except ImportError:
            raise BuilderUnavailable("polygraphy is not installed (pip install polygraphy)") from None
        self._trt = tensorrt

    def version(self) -> str:
        return self._trt.__version__

    def variants(self, precision: str) -> list[str]:
        return [precision]

    def needs_calibration(self, variant: str) -> bool:
        return variant == "int8"

    def part_variant(self, variant: str, calibrated: bool) -> str:
        return variant if calibrated or variant != "int8" else "fp16"

    def recipe(self, source: Path, target: Path, variant: str, calibration: CalibrationStream | None,
               options: BuildOptions) -> PlanRecipe:
        """Everything decided before TensorRT builds: the ONNX it reads, the profile, Polygraphy's network and
        config loaders (lazy: nothing runs until the build), the calibrator and its cache."""
        from polygraphy.backend.trt import Calibrator, CreateConfig, NetworkFromOnnxPath, PostprocessNetwork

        trt = self._trt
        version = self.version()
        profile = graph_profile(source, options.dimensions)
        typed = strongly_typed(version)
        int8_mode = choose_int8_mode(version, options.int8_mode) if variant == "int8" else None
        onnx_path, details, pinned = source, {}, set()
        if variant == "int8" and int8_mode == "explicit":
            onnx_path = target.with_suffix(".qdq.onnx")
            details.update(quantize_int8(source, onnx_path, calibration, INT8_FORMS["tensorrt"]))
        elif variant == "fp16" and typed:
            onnx_path = target.with_suffix(".fp16.onnx")
            details.update(convert_fp16(source, onnx_path))

        network = NetworkFromOnnxPath(str(onnx_path), strongly_typed=typed or None)
        if variant == "fp16" and not typed:
            network = PostprocessNetwork(network, self._pin_fragile_layers_fp32)
        calibrator = None
        # Beside the engines, not in the staging folder: later implicit builds of this model reuse it.
        cache_dir = options.timing_cache.parent if options.timing_cache else target.parent
        cache = cache_dir / f"{target.stem}.calibration.cache"
        if variant == "int8" and int8_mode == "implicit":
            if calibration is None:
                raise ValueError("implicit INT8 needs a calibration stream")
            kept = float_nodes(source, calibration, INT8_FORMS["tensorrt"])
            details.update({"calibration_method": "entropy (IInt8EntropyCalibrator2)", "float_nodes": kept})
            network = PostprocessNetwork(network, lambda network: self._keep_layers_out_of_int8(network, set(kept), pinned))
            calibrator = Calibrator(list(calibration_batches(calibration, profile)), cache=str(cache),
                                    BaseClass=trt.IInt8EntropyCalibrator2)
        workspace = workspace_bytes(self._free_device_bytes(), options.workspace_fraction)
        config = CreateConfig(
            tf32=False,
            fp16=None if typed else variant in ("fp16", "int8"),
            int8=None if typed else variant == "int8",
            calibrator=calibrator,
            profiles=[self._polygraphy_profile(profile)],
            precision_constraints=None if typed else {"fp16": "obey", "int8": "prefer"}.get(variant),
            memory_pool_limits={trt.MemoryPoolType.WORKSPACE: workspace},
            load_timing_cache=str(options.timing_cache) if options.timing_cache and options.timing_cache.is_file() else None,
            profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
        )
        return PlanRecipe(network, config, profile, onnx_path, details, int8_mode, typed, cache, pinned)

    def build(self, source: Path, target: Path, variant: str, calibration: CalibrationStream | None,
              options: BuildOptions) -> dict:
        from polygraphy.backend.trt import engine_bytes_from_network

        recipe = self.recipe(source, target, variant, calibration, options)
        plan = bytes(engine_bytes_from_network(recipe.network, recipe.config,
                                               save_timing_cache=str(options.timing_cache) if options.timing_cache else None))
        target.write_bytes(plan)
        counts = self._layer_precisions(plan)
        check_precision_counts(variant, counts)
        if recipe.onnx_path != source:
            recipe.onnx_path.unlink(missing_ok=True)
        if "float_nodes" in recipe.details and recipe.int8_mode == "implicit":
            recipe.details["float_nodes_pinned"] = sorted(recipe.pinned_float_nodes)  # layer names matched node names
        return {
            **recipe.details,
            "tensorrt": self.version(), **self._device(), "l4t": l4t_release(),
            "profile": recipe.profile.as_dict(), "strongly_typed": recipe.strongly_typed, "int8_mode": recipe.int8_mode,
            "tf32": False, "layer_precisions": counts,
            "calibration_cache": recipe.calibration_cache.name if recipe.calibration_cache.is_file() else None,
            "io": self._io(plan),
        }

    @staticmethod
    def _polygraphy_profile(profile: ShapeProfile):
        from polygraphy.backend.trt import Profile

        polygraphy_profile = Profile()
        for name, (low, middle, high) in profile.shapes.items():
            polygraphy_profile.add(name, low, middle, high)
        return polygraphy_profile

    def _pin_fragile_layers_fp32(self, network):
        """LayerNorm/GroupNorm/Softmax (by layer type or ONNX node name) computed and output in fp32."""
        trt = self._trt
        fragile_types = {getattr(trt.LayerType, name) for name in ("NORMALIZATION", "SOFTMAX") if hasattr(trt.LayerType, name)}
        for layer in network:
            if layer.type in fragile_types or _FP32_LAYER_NAMES.search(layer.name):
                layer.precision = trt.float32
                for index in range(layer.num_outputs):
                    layer.set_output_type(index, trt.float32)
        return network

    def _keep_layers_out_of_int8(self, network, float_layers: set[str], pinned: set[str]):
        """Implicit INT8 runs any layer in INT8 where TensorRT finds it faster; only MatMul/Conv may be.
        Norms and softmax stay fp32 (as in fp16 plans); residual Adds, the first conv and the nodes that
        sensitivity.py finds fragile run in fp16 (layers take their ONNX node's name: those found go into
        `pinned`, so the sidecar shows any that a TensorRT version named otherwise)."""
        trt = self._trt
        self._pin_fragile_layers_fp32(network)
        floats = (trt.float32, trt.float16)
        for layer in network:
            elementwise = layer.type == trt.LayerType.ELEMENTWISE and all(
                layer.get_output(index).dtype in floats for index in range(layer.num_outputs))
            if layer.name in float_layers:
                pinned.add(layer.name)
            if not layer.precision_is_set and (elementwise or layer.name in float_layers):
                layer.precision = trt.float16
        return network

    def _free_device_bytes(self) -> int:
        import pycuda.autoprimaryctx  # noqa: F401  (shares the primary context with TensorRT)
        import pycuda.driver as cuda

        free, _ = cuda.mem_get_info()
        return free

    def _device(self) -> dict:
        import pycuda.autoprimaryctx  # noqa: F401
        import pycuda.driver as cuda

        device = cuda.Context.get_device()
        major, minor = device.compute_capability()
        return {"gpu": device.name(), "compute_capability": f"{major}.{minor}"}

    def _runtime_engine(self, plan: bytes):
        trt = self._trt
        return trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)

    def _layer_precisions(self, plan: bytes) -> dict[str, int]:
        import json

        inspector = self._runtime_engine(plan).create_engine_inspector()
        return count_layer_precisions(json.loads(inspector.get_engine_information(self._trt.LayerInformationFormat.JSON)))

    def _io(self, plan: bytes) -> dict:
        trt = self._trt
        engine = self._runtime_engine(plan)
        described = {"inputs": [], "outputs": []}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            kind = "inputs" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "outputs"
            described[kind].append({"name": name, "dtype": trt.nptype(engine.get_tensor_dtype(name)).__name__,
                                    "shape": list(engine.get_tensor_shape(name))})
        return described
