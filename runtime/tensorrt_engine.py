"""TensorRT plans behind the engine protocol, run with pycuda: lean enough for a Jetson app.

Only the name-based tensor API (num_io_tensors, get_tensor_name/mode/dtype/shape, get_tensor_profile_shape,
set_input_shape, set_tensor_address, execute_async_v3), present from TensorRT 8.6 to 11. Device buffers are
sized once for the profile's maximum shapes and reused; pinned host buffers exist only for the tensors that
cross to or from the host; inputs are cast to each tensor's declared dtype (an fp16 engine may declare fp16
inputs); one CUDA stream per engine. `run_device` binds device tensors where they lie (another engine's
output, or this engine's previous output: then that output is written to a second buffer, so a KV cache fed
back step after step never aliases its input) and copies back only what is asked for.

Needs TensorRT, pycuda and a GPU to run; the tests drive it over stand-ins (stand_ins/tensorrt.py) and
`make check-device` runs it on a board. What has run where: the README's status table.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from asr_engines.host import gpu_identity, l4t_release
from asr_engines.manifest import load_manifest
from asr_engines.runtime.engine import ClosedOnExit, DeviceTensor, EngineError, Feeds, TensorInfo
from asr_engines.variants import Variant

#: What a plan is tied to (recorded at build time in the manifest): TensorRT version, GPU, its compute capability,
#: multiprocessors and memory (every Orin module is called "Orin"), and the Jetson Linux release.
IDENTITY = ("tensorrt", "gpu", "compute_capability", "multiprocessors", "gpu_memory_mb", "l4t")


def plan_mismatches(built: dict, here: dict) -> list[str]:
    """What differs between the machine a plan was built on and this one (`here` has IDENTITY's keys).
    Keys the manifest does not record are not compared; memory may differ by 2 % (carve-outs)."""
    problems = []
    for key in IDENTITY:
        if key not in built:
            continue
        was, now = built[key], here.get(key)
        same = abs(was - now) <= 0.02 * was if key == "gpu_memory_mb" and was and now else was == now
        if not same:
            problems.append(f"{key.replace('_', ' ')} {was} when built, {now} here")
    return problems


def check_plan_compatibility(built: dict, here: dict, plan: Path) -> None:
    """Refuse a plan built by another TensorRT version, for another GPU or another Jetson Linux, saying what
    differs and what to rebuild."""
    problems = plan_mismatches(built, here)
    if problems:
        raise EngineError(f"{plan} was built elsewhere ({'; '.join(problems)}): rebuild it here with "
                          "`make engines MODEL=<model>`")


class PycudaMemory:
    """Pinned host arrays, device allocations and async copies on one stream, through pycuda."""

    def __init__(self) -> None:
        import pycuda.autoprimaryctx  # noqa: F401  (TensorRT uses the primary context too; autoinit would make another)
        import pycuda.driver as cuda

        self._cuda = cuda
        self.stream = cuda.Stream()
        self.handle = self.stream.handle

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
    """Device buffers per IO tensor, sized for the largest shapes profile 0 allows; pinned host buffers made on
    first use; a second device buffer for an output only once it is fed back into the engine."""

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
        self._nbytes = {info.name: int(np.prod(self._limits[info.name][1] if info.name in self._limits
                                               else context.get_tensor_shape(info.name))) * np.dtype(info.dtype).itemsize
                        for info in self.inputs + self.outputs}
        self._dtypes = {info.name: np.dtype(info.dtype) for info in self.inputs + self.outputs}
        self._device = {info.name: [memory.device(self._nbytes[info.name])] for info in self.inputs + self.outputs}
        self._current = dict.fromkeys(self._device, 0)  # which of an output's buffers it is written to
        self._host: dict[str, np.ndarray] = {}

    def _pinned(self, name: str) -> np.ndarray:
        if name not in self._host:
            self._host[name] = self.memory.pinned(self._nbytes[name] // self._dtypes[name].itemsize, self._dtypes[name])
        return self._host[name]

    def bind_inputs(self, feeds: Feeds) -> set[int]:
        """Set every input's shape and address: device tensors where they lie, host arrays cast and copied (async)
        into this engine's buffer. Returns the device addresses read."""
        read = set()
        for info in self.inputs:
            if info.name not in feeds:
                raise EngineError(f"missing input {info.name!r}; the engine takes {[i.name for i in self.inputs]}")
            value = feeds[info.name]
            shape = tuple(value.shape)
            low, high = self._limits[info.name]
            if len(shape) != len(low) or any(not lo <= n <= hi for n, lo, hi in zip(shape, low, high)):
                raise EngineError(f"input {info.name!r} has shape {shape}; this engine's profile takes {low} to {high} "
                                  "(rebuild with --profile-min-s/--profile-max-s/--max-batch to widen it)")
            self.context.set_input_shape(info.name, shape)
            if isinstance(value, DeviceTensor):
                if value.backend != "tensorrt" or value.dtype != info.dtype:
                    raise EngineError(f"input {info.name!r}: a {value.backend} {value.dtype} device tensor cannot feed "
                                      f"this TensorRT {info.dtype} input")
                address = int(value.handle)
            else:
                array = np.ascontiguousarray(value, dtype=info.dtype)
                host = self._pinned(info.name)[: array.size]
                host[:] = array.reshape(-1)
                address = int(self._device[info.name][0])
                self.memory.to_device(self._device[info.name][0], host)
            self.context.set_tensor_address(info.name, address)
            read.add(address)
        return read

    def bind_outputs(self, read: set[int]) -> None:
        """Point every output at its buffer; one whose buffer this run also reads moves to its other buffer."""
        for info in self.outputs:
            buffers = self._device[info.name]
            if int(buffers[self._current[info.name]]) in read:
                if len(buffers) == 1:
                    buffers.append(self.memory.device(self._nbytes[info.name]))
                self._current[info.name] = 1 - self._current[info.name]
            self.context.set_tensor_address(info.name, int(buffers[self._current[info.name]]))

    def fetch(self, to_host: Collection[str]) -> tuple[dict[str, np.ndarray], dict[str, DeviceTensor]]:
        """Copy the outputs named in `to_host` back (async), wait for the stream; every output as a device tensor."""
        shapes = {info.name: tuple(self.context.get_tensor_shape(info.name)) for info in self.outputs}
        unknown = set(to_host) - set(shapes)
        if unknown:
            raise EngineError(f"no output {sorted(unknown)}; the engine gives {sorted(shapes)}")
        views = {}
        for name in to_host:
            views[name] = self._pinned(name)[: int(np.prod(shapes[name]))]
            self.memory.to_host(views[name], self._device[name][self._current[name]])
        self.memory.synchronize()
        device = {info.name: DeviceTensor("tensorrt", shapes[info.name], info.dtype,
                                          int(self._device[info.name][self._current[info.name]])) for info in self.outputs}
        return {name: view.reshape(shapes[name]).copy() for name, view in views.items()}, device


class TensorRTEngine(ClosedOnExit):
    """A deserialized plan with one execution context and reusable buffers (`load_tensorrt_engine` makes one)."""

    backend = "tensorrt"

    def __init__(self, engine, context, memory, input_mode, nptype, device: str, variant: Variant | None = None):
        self._engine, self._context, self._memory = engine, context, memory
        self._buffers = IOBuffers(engine, context, memory, input_mode, nptype)
        self.inputs, self.outputs = self._buffers.inputs, self._buffers.outputs
        self.device, self.variant = device, variant

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run_device(feeds, [info.name for info in self.outputs])[0]

    def run_device(self, feeds: Feeds, to_host: Collection[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, DeviceTensor]]:
        self._buffers.bind_outputs(self._buffers.bind_inputs(feeds))
        if not self._context.execute_async_v3(self._memory.handle):
            raise EngineError("TensorRT execution failed (see the TensorRT log above)")
        return self._buffers.fetch(to_host)

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
    here = {"tensorrt": trt.__version__, **gpu_identity(), "l4t": l4t_release()}
    manifest = load_manifest(path)
    graph = next((name for name, file in manifest.files.items() if file == path.name), None)
    check_plan_compatibility(manifest.build.get(graph, {}), here, path)
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise EngineError(f"{path}: TensorRT {trt.__version__} could not deserialize it; rebuild it here")
    return TensorRTEngine(engine, engine.create_execution_context(), memory, trt.TensorIOMode.INPUT, trt.nptype,
                          f"cuda:0 {here['gpu']}", variant)
