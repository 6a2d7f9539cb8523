"""TensorRT plans from the exported ONNX, through Polygraphy's loaders (profiles, calibrator, timing cache,
TF32 and precision flags across TensorRT versions).

Written against the documented APIs of TensorRT 8.5 (JetPack 5), 8.6, 10.3 (JetPack 6) and 11; NOT RUN
in this project's CI or on its machines, which have no TensorRT. `make check-device` on a Jetson builds,
runs and compares all three precisions. Everything decided without TensorRT lives in tensorrt_settings.py
and is tested.

- fp32: TF32 off. fp16: LayerNorm/GroupNorm/Softmax layers pinned to fp32 (precision constraints obeyed;
  on TensorRT 11, strongly typed from an fp16 ONNX with those ops kept fp32).
- int8 implicit (TensorRT <= 10): IInt8EntropyCalibrator2 on the calibration stream at the profile's OPT
  length, fp16 allowed for the rest, calibration cache written beside the plan.
- int8 explicit (TensorRT >= 10): built from the symmetric Q/DQ ONNX made from the same stream.
After the build the engine inspector counts layers per precision; an int8 build with no int8 layer fails.
"""

from __future__ import annotations

import re
from pathlib import Path

from calibration.stream import CalibrationStream
from engines.builder import BuilderUnavailable, BuildOptions
from engines.device import l4t_release
from engines.float16 import convert_fp16
from engines.onnxruntime_build import onnx_io
from engines.quantize import INT8_FORMS, quantize_int8
from engines.tensorrt_settings import (calibration_batches, check_precision_counts, choose_int8_mode,
                                       count_layer_precisions, profile_from_durations, strongly_typed, workspace_bytes)

_FP32_LAYER_NAMES = re.compile(r"layer_?norm|group_?norm|instance_?norm|softmax", re.IGNORECASE)


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

    def build(self, source: Path, target: Path, variant: str, calibration: CalibrationStream | None,
              options: BuildOptions) -> dict:
        from polygraphy.backend.trt import (Calibrator, CreateConfig, NetworkFromOnnxPath, PostprocessNetwork, Profile,
                                            engine_bytes_from_network)

        trt = self._trt
        version = self.version()
        io = onnx_io(source)
        input_name = io["inputs"][0]["name"]
        profile = profile_from_durations(input_name, options.durations_s, 16_000, *options.profile_s)
        typed = strongly_typed(version)
        int8_mode = choose_int8_mode(version, options.int8_mode) if variant == "int8" else None
        onnx_path, details = source, {}
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
            calibrator = Calibrator(list(calibration_batches(calibration, profile)), cache=str(cache),
                                    BaseClass=trt.IInt8EntropyCalibrator2)
        config = CreateConfig(
            tf32=False,
            fp16=None if typed else variant in ("fp16", "int8"),
            int8=None if typed else variant == "int8",
            calibrator=calibrator,
            profiles=[Profile().add(input_name, profile.min, profile.opt, profile.max)],
            precision_constraints="obey" if variant == "fp16" and not typed else None,
            memory_pool_limits={trt.MemoryPoolType.WORKSPACE: workspace_bytes(self._free_device_bytes(), options.workspace_fraction)},
            load_timing_cache=str(options.timing_cache) if options.timing_cache and options.timing_cache.is_file() else None,
            profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
        )
        plan = engine_bytes_from_network(network, config, save_timing_cache=str(options.timing_cache) if options.timing_cache else None)
        target.write_bytes(bytes(plan))
        counts = self._layer_precisions(bytes(plan))
        check_precision_counts(variant, counts)
        if onnx_path != source:
            onnx_path.unlink(missing_ok=True)
        return {
            **details,
            "tensorrt": version, **self._device(), "l4t": l4t_release(),
            "profile": profile.as_dict(), "strongly_typed": typed, "int8_mode": int8_mode,
            "tf32": False, "layer_precisions": counts,
            "calibration_cache": cache.name if cache.is_file() else None,
            "io": self._io(bytes(plan)),
        }

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
