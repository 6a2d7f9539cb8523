"""Stand-ins for TensorRT and CUDA, to test our runtime's buffer, shape and dtype logic where neither exists.

They are not TensorRT: `StandInPlan` offers TensorRT's name-based tensor API over an ONNX graph and a shape
profile, declaring int64 tensors as int32 as TensorRT 8.x does; `StandInContext` "executes" by running the
graph with ONNX Runtime on what lies at the tensors' addresses: in `StandInDeviceMemory` (raw bytes, like device
memory) or, on a GPU, in real device memory. What they check is ours: IOBuffers and TensorRTEngine sizing,
casting, copying, shaping and reusing buffers on real graphs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

INPUT, OUTPUT = "INPUT", "OUTPUT"  # stand for trt.TensorIOMode members
ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


class StandInDeviceMemory:
    """Device allocations as byte arrays keyed by fake addresses; copies move bytes, as cudaMemcpy does, and are
    counted (`h2d_bytes`, `d2h_bytes`). One instance is one GPU: engines sharing it can bind each other's buffers.
    The stand-in context reads and writes it with `read`/`write`, which are the GPU's own work, not copies."""

    handle = 0  # the stream handle TensorRTEngine passes to execute_async_v3

    def __init__(self) -> None:
        self.store: dict[int, np.ndarray] = {}
        self.allocations = 0
        self.h2d_bytes = self.d2h_bytes = 0

    def pinned(self, count: int, dtype: np.dtype) -> np.ndarray:
        return np.zeros(count, dtype)

    def device(self, nbytes: int) -> int:
        self.allocations += 1
        address = 0x1000 * self.allocations
        self.store[address] = np.zeros(max(nbytes, 1), np.uint8)
        return address

    def to_device(self, device: int, host: np.ndarray) -> None:
        self.write(device, host)
        self.h2d_bytes += host.nbytes

    def to_host(self, host: np.ndarray, device: int) -> None:
        raw = host.reshape(-1).view(np.uint8)
        raw[:] = self.store[int(device)][: raw.size]
        self.d2h_bytes += host.nbytes

    def read(self, address: int, shape: tuple, dtype: np.dtype) -> np.ndarray:
        array = np.empty(shape, dtype)
        raw = array.reshape(-1).view(np.uint8)
        raw[:] = self.store[address][: raw.size]
        return array

    def write(self, address: int, array: np.ndarray) -> None:
        raw = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        if raw.size > self.store[int(address)].size:
            raise MemoryError(f"write of {raw.size} bytes into an allocation of {self.store[int(address)].size}")
        self.store[int(address)][: raw.size] = raw

    def synchronize(self) -> None:
        pass


def _tensor_dtype(elem_type: int) -> np.dtype:
    import onnx

    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    return np.dtype(np.int32) if dtype == np.int64 else dtype  # TensorRT 8.x casts int64 IO to int32


class StandInPlan:
    """TensorRT's ICudaEngine tensor API over an ONNX graph and a profile {input: (min, opt, max)}."""

    def __init__(self, onnx_path: Path, profile: dict[str, tuple], declared: dict[str, np.dtype] | None = None):
        """`declared` overrides tensors' dtypes, as a plan may (an fp16 plan declaring fp16 inputs)."""
        import onnx
        import onnxruntime

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        self.session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.profile = profile
        self.tensors = {}
        for mode, values in ((INPUT, graph.input), (OUTPUT, graph.output)):
            for value in values:
                dims = [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
                dtype = (declared or {}).get(value.name, _tensor_dtype(value.type.tensor_type.elem_type))
                self.tensors[value.name] = (mode, np.dtype(dtype), dims)
        self.names = list(self.tensors)
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> str:
        return self.tensors[name][0]

    def get_tensor_dtype(self, name: str) -> np.dtype:
        return self.tensors[name][1]

    def get_tensor_shape(self, name: str) -> tuple:
        return tuple(dim if isinstance(dim, int) else -1 for dim in self.tensors[name][2])

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> tuple:
        return self.profile[name]


class StandInContext:
    """IExecutionContext: input shapes set, output shapes derived from the ONNX's symbolic dims, and
    execution by ONNX Runtime on the bytes at each tensor's address (copied out and back on the memory's stream)."""

    def __init__(self, plan: StandInPlan, memory: StandInDeviceMemory):
        self.plan, self.memory = plan, memory
        self.shapes: dict[str, tuple] = {}
        self.addresses: dict[str, int] = {}
        self.executions = 0

    def set_input_shape(self, name: str, shape) -> bool:
        self.shapes[name] = tuple(int(n) for n in shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple:
        mode, _, dims = self.plan.tensors[name]
        if mode == INPUT:
            return self.shapes[name]
        # Optimum names the first decoder's cache "past + decoder length" though it has no past: unbound names are 0;
        # shape inference writes output lengths as floor(...) expressions
        functions = {"floor": math.floor, "ceil": math.ceil, "max": max, "min": min}
        bound = {name: 0 for _, _, dims in self.plan.tensors.values() for dim in dims if isinstance(dim, str)
                 for name in re.findall(r"[A-Za-z_]\w*", dim) if name not in functions}
        for input_name, shape in self.shapes.items():
            for dim, size in zip(self.plan.tensors[input_name][2], shape):
                if isinstance(dim, str):
                    bound[dim] = size
        return tuple(dim if isinstance(dim, int) else int(eval(dim, {"__builtins__": {}, **functions}, bound)) for dim in dims)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        feeds = {}
        for tensor in self.plan.session.get_inputs():
            _, dtype, _ = self.plan.tensors[tensor.name]
            array = self.memory.read(self.addresses[tensor.name], self.shapes[tensor.name], dtype)
            feeds[tensor.name] = array.astype(ONNX_TYPES[tensor.type])
        read = {self.addresses[name] for name in self.shapes}
        assert not [name for name, (mode, _, _) in self.plan.tensors.items() if mode == OUTPUT and self.addresses[name] in read], \
            "an output is written where an input is read"
        for name, value in zip([o.name for o in self.plan.session.get_outputs()], self.plan.session.run(None, feeds)):
            _, dtype, _ = self.plan.tensors[name]
            expected = self.get_tensor_shape(name)
            assert value.shape == expected, f"{name}: the graph gave {value.shape}, the shape API said {expected}"
            self.memory.write(self.addresses[name], np.ascontiguousarray(value, dtype))
        self.executions += 1
        return True


def stand_in_engine(onnx_path: Path, profile: dict[str, tuple], declared: dict[str, np.dtype] | None = None, memory=None):
    """Our TensorRTEngine over a stand-in plan and context, on `memory` (PycudaMemory on a GPU; by default
    StandInDeviceMemory); and that memory."""
    from asr_engines.runtime.tensorrt_engine import TensorRTEngine

    plan, memory = StandInPlan(onnx_path, profile, declared), memory or StandInDeviceMemory()
    return TensorRTEngine(plan, StandInContext(plan, memory), memory, INPUT, np.dtype, "stand-in"), memory


class CountedEngine:
    """An engine on StandInDeviceMemory whose runs add the bytes they copy to `log[part]` (h2d, d2h, runs)."""

    def __init__(self, engine, memory: StandInDeviceMemory, part: str, log: dict):
        self.engine, self.memory, self.part, self.log = engine, memory, part, log
        log[part] = {"h2d": 0, "d2h": 0, "runs": 0}

    def run_device(self, feeds, to_host=()):
        h2d, d2h = self.memory.h2d_bytes, self.memory.d2h_bytes
        result = self.engine.run_device(feeds, to_host)
        entry = self.log[self.part]
        entry["h2d"] += self.memory.h2d_bytes - h2d
        entry["d2h"] += self.memory.d2h_bytes - d2h
        entry["runs"] += 1
        return result

    def __getattr__(self, name: str):
        return getattr(self.engine, name)


def stand_in_whisper(onnx_dir: Path, manifest, durations_s=(2.0, 6.0), max_batch: int = 1, memory=None):
    """A WhisperRecognizer over our TensorRTEngine for each of the three graphs, stand-in plans on one shared
    GPU (`memory`: by default a StandInDeviceMemory), every copy counted: (recognizer, memory, bytes per graph).
    Each plan stands for the graph a TensorRT build compiles: the exported one after the family's passes (the
    decoders' greedy head, with the manifest's decoder settings)."""
    import tempfile

    from asr_engines.engines.build import prepared_graph
    from asr_engines.engines.profiles import dimension_ranges, graph_profile
    from asr_engines.families import WHISPER
    from asr_engines.runtime.whisper import WhisperRecognizer

    memory, log, engines = memory or StandInDeviceMemory(), {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for part in WHISPER.graphs:
            ranges = dimension_ranges("whisper", part.name, onnx_dir, durations_s, max_batch=max_batch)
            profile = graph_profile(onnx_dir / part.file, ranges)
            onnx_path = prepared_graph(onnx_dir, part, manifest.decoder, Path(scratch), "argmax")[0] or onnx_dir / part.file
            engine, _ = stand_in_engine(onnx_path, profile.shapes, memory=memory)
            engines[part.name] = CountedEngine(engine, memory, part.name, log)
    return WhisperRecognizer(engines["encoder"], engines["decoder"], engines["decoder_with_past"], manifest,
                             trim_margin_s=None), memory, log  # a plan keeps the whole window


def bytes_per_token(log: dict) -> tuple[float, float]:
    """Host->device and device->host bytes of the decoder graphs per decoding step (one token per window each)."""
    steps = log["decoder"]["runs"] + log["decoder_with_past"]["runs"]
    h2d = log["decoder"]["h2d"] + log["decoder_with_past"]["h2d"]
    d2h = log["decoder"]["d2h"] + log["decoder_with_past"]["d2h"]
    return h2d / steps, d2h / steps
