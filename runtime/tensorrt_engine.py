"""TensorRT plans behind the engine protocol, run with pycuda: lean enough for a Jetson app.

Only the name-based tensor API (num_io_tensors, get_tensor_name/mode/dtype/shape, get_tensor_profile_shape,
set_input_shape, set_tensor_address, execute_async_v3), present from TensorRT 8.5 to 11. Pinned host and
device buffers are sized once for the profile's maximum shapes and reused; inputs are cast to each tensor's
declared dtype (an fp16 engine may declare fp16 inputs); one CUDA stream.

Needs TensorRT, pycuda and a GPU to run; the tests drive it over stand-ins (tests/tensorrt_stand_ins.py) and
`make check-device` runs it on a board. What has run where: the README's status table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.variants import Variant
from engines.sidecar import read_sidecar
from runtime.engine import EngineError, TensorInfo


def check_plan_compatibility(built: dict, tensorrt_version: str, gpu_name: str, plan: Path) -> None:
    """Refuse a plan built by another TensorRT version or for another GPU, saying what to rebuild."""
    problems = []
    if built.get("tensorrt") != tensorrt_version:
        problems.append(f"TensorRT {built.get('tensorrt')} built it, this is {tensorrt_version}")
    if built.get("gpu") != gpu_name:
        problems.append(f"it was built for {built.get('gpu')}, this GPU is {gpu_name}")
    if problems:
        raise EngineError(f"{plan}: {'; '.join(problems)}: rebuild it here with `make engines MODEL=<model>`")


class PycudaMemory:
    """Pinned host arrays, device allocations and async copies on one stream, through pycuda."""

    def __init__(self) -> None:
        import pycuda.autoprimaryctx  # noqa: F401  (TensorRT uses the primary context too; autoinit would make another)
        import pycuda.driver as cuda

        self._cuda = cuda
        self.stream = cuda.Stream()
        self.handle = self.stream.handle

    def device_name(self) -> str:
        return self._cuda.Context.get_device().name()

    def pinned(self, count: int, dtype: np.dtype) -> np.ndarray:
        return self._cuda.pagelocked_empty(count, dtype)

    def device(self, nbytes: int):
        return self._cuda.mem_alloc(max(nbytes, 1))

    def to_device(self, device, host: np.ndarray) -> None:
        self._cuda.memcpy_htod_async(device, host, self.stream)

    def to_host(self, host: np.ndarray, device) -> None:
        self._cuda.memcpy_dtoh_async(host, device, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()


class IOBuffers:
    """One host and one device buffer per IO tensor, sized for the largest shape profile 0 allows."""

    def __init__(self, engine, context, memory, input_mode, nptype):
        self.engine, self.context, self.memory = engine, context, memory
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self._limits: dict[str, tuple[tuple, tuple]] = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            info = TensorInfo(name, np.dtype(nptype(engine.get_tensor_dtype(name))).name, tuple(engine.get_tensor_shape(name)))
            if engine.get_tensor_mode(name) == input_mode:
                low, _, high = engine.get_tensor_profile_shape(name, 0)
                self._limits[name] = (tuple(low), tuple(high))
                self.inputs.append(info)
            else:
                self.outputs.append(info)
        for info in self.inputs:  # the largest outputs follow from the largest inputs
            context.set_input_shape(info.name, self._limits[info.name][1])
        self._host, self._device = {}, {}
        for info in self.inputs + self.outputs:
            shape = self._limits[info.name][1] if info.name in self._limits else tuple(context.get_tensor_shape(info.name))
            count = int(np.prod(shape))
            self._host[info.name] = memory.pinned(count, np.dtype(info.dtype))
            self._device[info.name] = memory.device(count * np.dtype(info.dtype).itemsize)
            context.set_tensor_address(info.name, int(self._device[info.name]))

    def stage_inputs(self, feeds: dict[str, np.ndarray]) -> None:
        """Cast, check against the profile, set shapes and copy every input to the device (async)."""
        for info in self.inputs:
            if info.name not in feeds:
                raise EngineError(f"missing input {info.name!r}; the engine takes {[i.name for i in self.inputs]}")
            array = np.ascontiguousarray(feeds[info.name], dtype=info.dtype)
            low, high = self._limits[info.name]
            if len(array.shape) != len(low) or any(not lo <= n <= hi for n, lo, hi in zip(array.shape, low, high)):
                raise EngineError(f"input {info.name!r} has shape {array.shape}; this engine's profile takes {low} to {high} "
                                  "(rebuild with --profile-min-s/--profile-max-s/--max-batch to widen it)")
            self.context.set_input_shape(info.name, array.shape)
            host = self._host[info.name][: array.size]
            host[:] = array.reshape(-1)
            self.memory.to_device(self._device[info.name], host)

    def fetch_outputs(self) -> dict[str, np.ndarray]:
        """Copy every output back (async), wait for the stream, return arrays in their run-time shapes."""
        shapes = {info.name: tuple(self.context.get_tensor_shape(info.name)) for info in self.outputs}
        views = {}
        for info in self.outputs:
            views[info.name] = self._host[info.name][: int(np.prod(shapes[info.name]))]
            self.memory.to_host(views[info.name], self._device[info.name])
        self.memory.synchronize()
        return {name: view.reshape(shapes[name]).copy() for name, view in views.items()}


class TensorRTEngine:
    """A deserialized plan with one execution context and reusable buffers (`load_tensorrt_engine` makes one)."""

    backend = "tensorrt"

    def __init__(self, engine, context, memory, input_mode, nptype, device: str, variant: Variant | None = None):
        self._engine, self._context, self._memory = engine, context, memory
        self._buffers = IOBuffers(engine, context, memory, input_mode, nptype)
        self.inputs, self.outputs = self._buffers.inputs, self._buffers.outputs
        self.device, self.variant = device, variant

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._buffers.stage_inputs(feeds)
        if not self._context.execute_async_v3(self._memory.handle):
            raise EngineError("TensorRT execution failed (see the TensorRT log above)")
        return self._buffers.fetch_outputs()

    def close(self) -> None:
        """Free the pinned and device buffers, the context and the engine now, not at garbage collection."""
        self._buffers = None
        self._context = None
        self._engine = None


def load_tensorrt_engine(path: Path, variant: Variant | None = None, threads: int | None = None,
                         takes_turns: bool = False) -> TensorRTEngine:
    """Deserialize a plan built here for this GPU. `threads` and `takes_turns` are ignored: TensorRT runs on the GPU."""
    try:
        import pycuda  # noqa: F401
        import tensorrt as trt
    except ImportError as error:
        raise EngineError(f"{path}: needs TensorRT and pycuda ({error.name} missing; on a Jetson: make install-jetson)") from None
    memory = PycudaMemory()
    gpu = memory.device_name()
    sidecar = read_sidecar(path)
    part = next((name for name, file in sidecar["files"].items() if file == path.name), None)
    check_plan_compatibility(sidecar["build"].get(part, {}), trt.__version__, gpu, path)
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise EngineError(f"{path}: TensorRT {trt.__version__} could not deserialize it; rebuild it here")
    return TensorRTEngine(engine, engine.create_execution_context(), memory, trt.TensorIOMode.INPUT, trt.nptype,
                          f"cuda:0 {gpu}", variant)
