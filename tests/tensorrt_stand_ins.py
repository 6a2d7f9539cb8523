"""Stand-ins for TensorRT and CUDA, to test our runtime's buffer, shape and dtype logic where neither exists.

They are not TensorRT: `StandInPlan` offers TensorRT's name-based tensor API over an ONNX graph and a shape
profile, declaring int64 tensors as int32 as TensorRT 8.x does; `StandInContext` "executes" by running the
graph with ONNX Runtime on what lies at the tensors' addresses: in `StandInDeviceMemory` (raw bytes, like device
memory) or, on a GPU, in real device memory. What they check is ours: IOBuffers and TensorRTEngine sizing,
casting, copying, shaping and reusing buffers on real graphs.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

INPUT, OUTPUT = "INPUT", "OUTPUT"  # stand for trt.TensorIOMode members
ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


class StandInDeviceMemory:
    """Device allocations as byte arrays keyed by fake addresses; copies move bytes, as cudaMemcpy does."""

    handle = 0  # the stream handle TensorRTEngine passes to execute_async_v3

    def __init__(self) -> None:
        self.store: dict[int, np.ndarray] = {}
        self.allocations = 0

    def pinned(self, count: int, dtype: np.dtype) -> np.ndarray:
        return np.zeros(count, dtype)

    def device(self, nbytes: int) -> int:
        self.allocations += 1
        address = 0x1000 * self.allocations
        self.store[address] = np.zeros(max(nbytes, 1), np.uint8)
        return address

    def to_device(self, device: int, host: np.ndarray) -> None:
        raw = host.reshape(-1).view(np.uint8)
        if raw.size > self.store[device].size:
            raise MemoryError(f"copy of {raw.size} bytes into an allocation of {self.store[device].size}")
        self.store[device][: raw.size] = raw

    def to_host(self, host: np.ndarray, device: int) -> None:
        raw = host.reshape(-1).view(np.uint8)
        raw[:] = self.store[device][: raw.size]

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
        # Optimum names the first decoder's cache "past + decoder length" though it has no past: unbound names are 0
        bound = {name: 0 for _, _, dims in self.plan.tensors.values() for dim in dims if isinstance(dim, str)
                 for name in re.findall(r"[A-Za-z_]\w*", dim)}
        for input_name, shape in self.shapes.items():
            for dim, size in zip(self.plan.tensors[input_name][2], shape):
                if isinstance(dim, str):
                    bound[dim] = size
        return tuple(dim if isinstance(dim, int) else int(eval(dim, {"__builtins__": {}}, bound)) for dim in dims)

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = int(address)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        feeds = {}
        for tensor in self.plan.session.get_inputs():
            _, dtype, _ = self.plan.tensors[tensor.name]
            array = np.empty(self.shapes[tensor.name], dtype)
            self.memory.to_host(array, self.addresses[tensor.name])
            self.memory.synchronize()
            feeds[tensor.name] = array.astype(ONNX_TYPES[tensor.type])
        for name, value in zip([o.name for o in self.plan.session.get_outputs()], self.plan.session.run(None, feeds)):
            _, dtype, _ = self.plan.tensors[name]
            expected = self.get_tensor_shape(name)
            assert value.shape == expected, f"{name}: the graph gave {value.shape}, the shape API said {expected}"
            self.memory.to_device(self.addresses[name], np.ascontiguousarray(value, dtype))
        self.memory.synchronize()  # the outputs are temporaries: copied before they go
        self.executions += 1
        return True


def stand_in_engine(onnx_path: Path, profile: dict[str, tuple], declared: dict[str, np.dtype] | None = None, memory=None):
    """Our TensorRTEngine over a stand-in plan and context, on `memory` (PycudaMemory on a GPU; by default
    StandInDeviceMemory); and that memory."""
    from runtime.tensorrt_engine import TensorRTEngine

    plan, memory = StandInPlan(onnx_path, profile, declared), memory or StandInDeviceMemory()
    return TensorRTEngine(plan, StandInContext(plan, memory), memory, INPUT, np.dtype, "stand-in"), memory
