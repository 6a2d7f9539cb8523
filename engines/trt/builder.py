"""TensorRT plans from the exported ONNX, through Polygraphy's loaders (profiles, calibrator, timing cache,
TF32 and precision flags across TensorRT versions). What can be decided without TensorRT is in
rules.py; the README's status table says what has run where.

One recipe per path, chosen by variant and TensorRT version:
- fp32: TF32 off.
- fp16 (<= 10): the fp16 flag; LayerNorm/GroupNorm/Softmax layers pinned to fp32, constraints obeyed.
  fp16 (11): strongly typed from an fp16 ONNX with those ops kept fp32 (11 has no precision flags).
- int8 implicit (8.6 to 10): IInt8EntropyCalibrator2 on the calibration stream at the profile's OPT shapes;
  only MatMul/Conv may run INT8 (norms and softmax fp32; residual Adds, the first conv and the nodes
  sensitivity.py finds fragile fp16, preferred). Its cache is keyed by what it was made from.
- int8 explicit (>= 10): the symmetric Q/DQ ONNX made from the same stream; weakly typed with fp16 allowed
  outside the Q/DQ pairs on 10.x; on 11 (always strongly typed) those layers run fp32, as the ONNX says.
After the build the engine inspector counts the layers per precision and judges whether INT8 kernels ran.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from asr_engines.engines.builder import BuilderUnavailable, GraphJob
from asr_engines.engines.int8.quantize import INT8_FORMS, float_nodes, quantize_int8
from asr_engines.engines.passes.float16 import convert_fp16
from asr_engines.engines.profiles import ShapeProfile, dimension_ranges, graph_profile
from asr_engines.engines.trt.options import TensorRTOptions
from asr_engines.engines.trt.rules import (
    MINIMUM_TENSORRT,
    calibration_batches,
    check_int8_ran,
    choose_int8_mode,
    count_layer_precisions,
    strongly_typed,
    version_tuple,
    workspace_bytes,
)
from asr_engines.families import GraphPart
from asr_engines.files import sha256_file
from asr_engines.host import gpu_identity, l4t_release
from asr_engines.variants import Precision, Variant

_FP32_LAYER_NAMES = re.compile(r"layer_?norm|group_?norm|instance_?norm|softmax", re.IGNORECASE)
#: Layers that compute shapes or move data: they have no arithmetic precision to pin.
_NOT_ARITHMETIC = ("SHAPE", "CONSTANT", "CAST")


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
    calibration_cache: Path | None = None
    pinned_float_nodes: set[str] = field(default_factory=set)  # filled during the build: float nodes found as layers


@dataclass
class _Path:
    """What one recipe path decides: the ONNX to parse, a network postprocessor, flags and a calibrator."""

    onnx_path: Path
    details: dict = field(default_factory=dict)
    postprocess: Callable | None = None
    flags: dict = field(default_factory=dict)
    int8_mode: str | None = None
    calibration_cache: Path | None = None


class TensorRTBuilder:
    backend = "tensorrt"
    suffix = ".plan"
    isolate_builds = True

    def __init__(self, options: TensorRTOptions | None = None) -> None:
        try:
            import tensorrt
        except ImportError:
            raise BuilderUnavailable("TensorRT's Python bindings are not installed (on a Jetson: make install-jetson)") from None
        try:
            import polygraphy  # noqa: F401
        except ImportError:
            raise BuilderUnavailable("polygraphy is not installed: pip install 'asr-engines[build]'") from None
        if version_tuple(tensorrt.__version__) < MINIMUM_TENSORRT:
            raise BuilderUnavailable(
                f"TensorRT {tensorrt.__version__} is too old: its ONNX parser has no LayerNormalization, which every "
                f"opset-17 export uses; TensorRT >= {'.'.join(map(str, MINIMUM_TENSORRT))} (JetPack >= 6) is needed")
        self._version = tensorrt.__version__
        self.options = options or TensorRTOptions()
        self._durations: tuple[float, ...] | None = None

    def version(self) -> str:
        return self._version

    def variants(self, precision: Precision) -> list[Variant]:
        return [Variant(precision.value)]

    def greedy_head(self, variant: Variant) -> str:
        return "argmax"  # 8 B per token off the device instead of the logits (docs/results/2026-12-05-gpu-proof.md)

    def fuses_attention(self, variant: Variant) -> bool:
        return False  # its ONNX parser reads no com.microsoft ops; TensorRT fuses attention itself

    def part_variants(self, variant: Variant, part: GraphPart) -> tuple[Variant, ...]:
        return (variant if part.calibrated or variant != Variant.INT8 else Variant.FP16,)

    def profile(self, job: GraphJob) -> ShapeProfile:
        """The optimization profile of the job's graph, from the profile dataset's durations (or overrides)."""
        if self._durations is None:
            from asr_engines.calibration.datasets import utterance_durations

            self._durations = utterance_durations(self.options.profile_dataset) if None in self.options.profile_s else ()
        ranges = dimension_ranges(job.family, job.part.name, job.export_dir, self._durations, self.options.profile_s,
                                  self.options.max_batch)
        return graph_profile(job.source, ranges)

    def recipe(self, job: GraphJob) -> PlanRecipe:
        """Everything decided before TensorRT builds: the ONNX it reads, the profile, Polygraphy's network and
        config loaders (lazy: nothing runs until the build), the calibrator and its cache."""
        import tensorrt as trt
        from polygraphy.backend.trt import CreateConfig, NetworkFromOnnxPath, PostprocessNetwork

        profile = self.profile(job)
        typed = strongly_typed(self._version)
        if job.variant == Variant.INT8:
            mode = choose_int8_mode(self._version, self.options.int8_mode)
            path = (self._int8_explicit if mode == "explicit" else self._int8_implicit)(job, profile)
        else:
            path = {Variant.FP32: self._fp32, Variant.FP16: self._fp16_typed if typed else self._fp16}[job.variant](job, profile)
        pinned: set[str] = set()
        network = NetworkFromOnnxPath(str(path.onnx_path))  # no strongly_typed flag: <= 10 weakly typed, 11 always typed
        if path.postprocess is not None:
            network = PostprocessNetwork(network, lambda network: path.postprocess(network, pinned))
        timing_cache = self.options.timing_cache
        config = CreateConfig(
            tf32=False,
            profiles=[_polygraphy_profile(profile)],
            memory_pool_limits={trt.MemoryPoolType.WORKSPACE: workspace_bytes(_free_device_bytes(), self.options.workspace_fraction)},
            load_timing_cache=str(timing_cache) if timing_cache and timing_cache.is_file() else None,
            profiling_verbosity=trt.ProfilingVerbosity.DETAILED,
            **path.flags,
        )
        return PlanRecipe(network, config, profile, path.onnx_path, path.details, path.int8_mode, typed,
                          path.calibration_cache, pinned)

    # -- one function per path ---------------------------------------------------------------
    def _fp32(self, job: GraphJob, profile: ShapeProfile) -> _Path:
        return _Path(job.source)

    def _fp16(self, job: GraphJob, profile: ShapeProfile) -> _Path:
        return _Path(job.source, postprocess=lambda network, pinned: _pin_fragile_layers_fp32(network),
                     flags=dict(fp16=True, precision_constraints="obey"))

    def _fp16_typed(self, job: GraphJob, profile: ShapeProfile) -> _Path:
        onnx_path = job.target.with_suffix(".fp16.onnx")
        return _Path(onnx_path, details=convert_fp16(job.source, onnx_path))

    def _int8_explicit(self, job: GraphJob, profile: ShapeProfile) -> _Path:
        onnx_path = job.target.with_suffix(".qdq.onnx")
        details = quantize_int8(job.source, onnx_path, _stream(job), INT8_FORMS["tensorrt"], job.float_nodes)
        # 10.x: weakly typed with fp16 allowed, so layers outside the Q/DQ pairs run fp16; 11 has no flags
        flags = {} if strongly_typed(self._version) else dict(fp16=True, int8=True)
        return _Path(onnx_path, details=details, flags=flags, int8_mode="explicit")

    def _int8_implicit(self, job: GraphJob, profile: ShapeProfile) -> _Path:
        import tensorrt as trt
        from polygraphy.backend.trt import Calibrator

        stream = _stream(job)
        kept = job.float_nodes if job.float_nodes is not None else float_nodes(job.source, stream, INT8_FORMS["cpu"])
        cache, reused = self._calibration_cache(job, stream.sha256)
        calibrator = Calibrator(list(calibration_batches(stream, profile)), cache=str(cache), BaseClass=trt.IInt8EntropyCalibrator2)
        details = {"calibration_method": "entropy (IInt8EntropyCalibrator2)", "float_nodes": kept,
                   "calibration_cache": {"file": cache.name, "reused": reused}}
        return _Path(job.source, details=details, int8_mode="implicit", calibration_cache=cache,
                     postprocess=lambda network, pinned: _keep_layers_out_of_int8(network, set(kept), pinned),
                     flags=dict(fp16=True, int8=True, calibrator=calibrator, precision_constraints="prefer"))

    def _calibration_cache(self, job: GraphJob, stream_sha256: str) -> tuple[Path, bool]:
        """The calibration cache for this graph, calibration stream and TensorRT version, in staging.

        TensorRT skips calibration when handed a cache, so one made from another ONNX, stream or TensorRT
        would silently give old scales: the key is in the name, and only a published cache with the same key
        is copied in for reuse."""
        key = hashlib.sha256(f"{sha256_file(job.source)}\n{stream_sha256}\n{self._version}".encode()).hexdigest()[:16]
        cache = job.target.with_name(f"{job.target.stem}.{key}.calibration.cache")
        published = job.published_dir / cache.name
        if published.is_file() and published.stat().st_size:
            shutil.copyfile(published, cache)
            return cache, True
        return cache, False

    # -- the build ------------------------------------------------------------------------------
    def build(self, job: GraphJob) -> dict:
        from polygraphy.backend.trt import engine_bytes_from_network

        recipe = self.recipe(job)
        timing_cache = self.options.timing_cache
        plan = bytes(engine_bytes_from_network(recipe.network, recipe.config,
                                               save_timing_cache=str(timing_cache) if timing_cache else None))
        job.target.write_bytes(plan)
        engine = _deserialize(plan)
        inspector = json.loads(engine.create_engine_inspector().get_engine_information(_json_format()))
        counts = count_layer_precisions(inspector)
        int8_note = check_int8_ran(job.variant, inspector, strict=self.options.strict_int8)
        if recipe.onnx_path != job.source:
            recipe.onnx_path.unlink(missing_ok=True)
        details = dict(recipe.details)
        if recipe.int8_mode == "implicit":
            details["float_nodes_pinned"] = sorted(recipe.pinned_float_nodes)  # layer names matched node names
        extra = [recipe.calibration_cache.name] if recipe.calibration_cache and recipe.calibration_cache.is_file() else []
        return {
            **details,
            "tensorrt": self._version, **gpu_identity(), "l4t": l4t_release(),
            "profile": recipe.profile.as_dict(), "strongly_typed": recipe.strongly_typed, "int8_mode": recipe.int8_mode,
            "tf32": False, "layer_precisions": counts, "int8_check": int8_note,
            "io": _io(engine), "extra_files": extra,
        }


def _stream(job: GraphJob):
    if job.calibration is None:
        raise ValueError("an int8 plan needs a calibration stream")
    return job.calibration


def _polygraphy_profile(profile: ShapeProfile):
    from polygraphy.backend.trt import Profile

    polygraphy_profile = Profile()
    for name, (low, middle, high) in profile.shapes.items():
        polygraphy_profile.add(name, low, middle, high)
    return polygraphy_profile


def _float_outputs(layer) -> bool:
    import tensorrt as trt

    return all(layer.get_output(index).dtype in (trt.float32, trt.float16) for index in range(layer.num_outputs))


def _layers(network):
    return (network.get_layer(index) for index in range(network.num_layers))


def _pin_fragile_layers_fp32(network):
    """LayerNorm/GroupNorm/Softmax (by layer type or ONNX node name) computed and output in fp32.

    Only layers that compute in floating point: a norm's Shape layer (INT64 output) matches the name rule,
    and pinning its output to fp32 is an error TensorRT logs."""
    import tensorrt as trt

    fragile_types = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX}
    skipped = {getattr(trt.LayerType, name) for name in _NOT_ARITHMETIC}
    for layer in _layers(network):
        if layer.type in skipped or not _float_outputs(layer):
            continue
        if layer.type in fragile_types or _FP32_LAYER_NAMES.search(layer.name):
            layer.precision = trt.float32
            for index in range(layer.num_outputs):
                layer.set_output_type(index, trt.float32)
    return network


def _keep_layers_out_of_int8(network, float_layers: set[str], pinned: set[str]):
    """Implicit INT8 runs any layer in INT8 where TensorRT finds it faster; only MatMul/Conv may be.
    Norms and softmax stay fp32 (as in fp16 plans); residual Adds, the first conv and the nodes that
    sensitivity.py finds fragile run in fp16 (layers take their ONNX node's name: those found go into
    `pinned`, so the manifest shows any that a TensorRT version named otherwise)."""
    import tensorrt as trt

    _pin_fragile_layers_fp32(network)
    skipped = {getattr(trt.LayerType, name) for name in _NOT_ARITHMETIC}
    for layer in _layers(network):
        if layer.name in float_layers:
            pinned.add(layer.name)
        if layer.type in skipped or not _float_outputs(layer) or layer.precision_is_set:
            continue
        if layer.type == trt.LayerType.ELEMENTWISE or layer.name in float_layers:
            layer.precision = trt.float16
    return network


def _free_device_bytes() -> int:
    import pycuda.autoprimaryctx  # noqa: F401  (shares the primary context with TensorRT)
    import pycuda.driver as cuda

    free, _ = cuda.mem_get_info()
    return free


def _deserialize(plan: bytes):
    import tensorrt as trt

    return trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)


def _json_format():
    import tensorrt as trt

    return trt.LayerInformationFormat.JSON


def _io(engine) -> dict:
    import tensorrt as trt

    described = {"inputs": [], "outputs": []}
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        kind = "inputs" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "outputs"
        described[kind].append({"name": name, "dtype": trt.nptype(engine.get_tensor_dtype(name)).__name__,
                                "shape": list(engine.get_tensor_shape(name))})
    return described
