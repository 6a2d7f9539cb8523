"""ONNX Runtime behind the engine protocol: CPU here; CUDA or TensorRT execution providers when installed."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from asr_engines.runtime.engine import ClosedOnExit, DeviceTensor, EngineError, Feeds, TensorInfo
from asr_engines.variants import Variant

logger = logging.getLogger(__name__)

_NUMPY_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
                 "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}
#: Preferred execution providers, best first; only those this onnxruntime build has are used.
PROVIDER_ORDER = ("CUDAExecutionProvider", "CPUExecutionProvider")
#: Graph fusions left out on the CPU provider: SkipLayerNormalization's CPU kernel is slower than the LayerNorm and
#: Add it replaces (docs/results/2026-12-02-onnxruntime-session.md, as for every setting below).
CPU_DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]


class OnnxRuntimeEngine(ClosedOnExit):
    """One ONNX file in an InferenceSession. Inputs are cast to each input's declared dtype."""

    backend = "onnxruntime"

    def __init__(self, path: Path, variant: Variant | None = None, threads: int | None = None,
                 providers: list[str] | None = None, takes_turns: bool = False):
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # The memory pattern plans one block per input shape on top of what the arena already holds: a higher peak
        # on varying lengths, at the same speed.
        options.enable_mem_pattern = False
        self.shares_pool = _on_shared_pool(threads)
        if self.shares_pool:
            options.use_per_session_threads = False
        else:
            if threads:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            if takes_turns:
                # Sessions taking turns, each with a pool of its own: spinning idle threads of one steal the cores
                # the next needs (share_thread_pool avoids it). A lone session spins, a little faster.
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = onnxruntime.get_available_providers()
        chosen = providers or [provider for provider in PROVIDER_ORDER if provider in available]
        try:
            disabled = CPU_DISABLED_OPTIMIZERS if chosen[0] == "CPUExecutionProvider" else []
            self._session = onnxruntime.InferenceSession(str(path), options, providers=chosen, disabled_optimizers=disabled)
        except Exception as error:  # onnxruntime raises its own untyped errors for bad files
            raise EngineError(f"{path}: ONNX Runtime cannot load it ({str(error).splitlines()[0]})") from None
        self.variant = variant
        provider = self._session.get_providers()[0]
        self.device = "cpu" if provider == "CPUExecutionProvider" else provider.removesuffix("ExecutionProvider").lower()
        self._device_type = "cuda" if provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"
        self._outputs_on_host = self._device_type == "cpu"  # run_device: session.run's arrays, no IOBinding
        self.inputs = [_info(arg) for arg in self._session.get_inputs()]
        self.outputs = [_info(arg) for arg in self._session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with _run_errors(self.path):
            results = self._session.run(None, self._cast(feeds))
        return {info.name: result for info, result in zip(self.outputs, results)}

    def run_device(self, feeds: Feeds, to_host: Collection[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, DeviceTensor]]:
        """Outputs left where the provider keeps them. On CUDA: OrtValues in GPU memory, through an IOBinding, bound
        as the next run's inputs without a copy. On a CPU that memory is the host's: `session.run`'s numpy arrays,
        fed back as they are (ONNX Runtime reads a contiguous array of the input's dtype in place), 0.2 ms a call
        cheaper than a fresh IOBinding (docs/results/2026-12-07-log-softmax.md)."""
        self._check_inputs(feeds)
        for info in self.inputs:
            value = feeds[info.name]
            if isinstance(value, DeviceTensor) and value.backend != self.backend:
                raise EngineError(f"input {info.name!r}: a {value.backend} device tensor cannot feed ONNX Runtime")
        unknown = set(to_host) - {info.name for info in self.outputs}
        if unknown:
            raise EngineError(f"no output {sorted(unknown)}; the engine gives {sorted(info.name for info in self.outputs)}")
        if self._outputs_on_host:
            arrays = {info.name: np.ascontiguousarray(_handle(feeds[info.name]), dtype=info.dtype) for info in self.inputs}
            with _run_errors(self.path):
                results = self._session.run(None, arrays)
            device = {info.name: DeviceTensor(self.backend, result.shape, info.dtype, result)  # numpy's dtype.name is slow
                      for info, result in zip(self.outputs, results)}
            return {name: device[name].handle for name in to_host}, device
        binding = self._session.io_binding()
        for info in self.inputs:
            value = feeds[info.name]
            if isinstance(value, DeviceTensor):
                binding.bind_ortvalue_input(info.name, value.handle)
            else:
                binding.bind_cpu_input(info.name, np.ascontiguousarray(value, dtype=info.dtype))
        for info in self.outputs:
            binding.bind_output(info.name, self._device_type)
        with _run_errors(self.path):
            self._session.run_with_iobinding(binding)
        values = dict(zip([info.name for info in self.outputs], binding.get_outputs()))
        device = {name: DeviceTensor(self.backend, tuple(value.shape()), _NUMPY_DTYPES.get(value.data_type(), value.data_type()), value)
                  for name, value in values.items()}
        return {name: values[name].numpy() for name in to_host}, device

    def _check_inputs(self, feeds: Feeds) -> None:
        missing = [info.name for info in self.inputs if info.name not in feeds]
        if missing:
            raise EngineError(f"missing input {missing[0]!r}; the engine takes {[i.name for i in self.inputs]}")

    def _cast(self, feeds: Feeds) -> dict[str, np.ndarray]:
        self._check_inputs(feeds)
        return {info.name: np.asarray(feeds[info.name], dtype=info.dtype) for info in self.inputs}

    def close(self) -> None:
        self._session = None


#: Set to 1, `share_thread_pool` does nothing.
OWN_POOLS_VARIABLE = "ASR_ENGINES_OWN_THREAD_POOLS"
#: Intra-op threads asked for the process's one pool by `share_thread_pool` (0: the runtime's default); None:
#: not asked, every session has a pool of its own.
_pool_asked: int | None = None
#: Its size once made: ONNX Runtime makes the global pool once per process and cannot resize it.
_pool_made: int | None = None
_pool_lock = threading.Lock()


def share_thread_pool(threads: int | None = None) -> None:
    """Run every ONNX Runtime engine this process loads from now on over one pool of `threads` CPU threads (default:
    the runtime's, one per core), its threads spinning between calls.

    Graphs that take turns (Whisper's encoder, decoder and KV-cache decoder; Moonshine's) then never wait for a
    core another graph's idle threads spin on, so they need not sleep between calls: Whisper tiny.en fp32 ran about
    30 % faster on two cores (docs/results/2026-12-06-shared-thread-pool.md). The command line (`transcribe`,
    `bench`, `serve`) does this. It is process-wide: once the pool exists ONNX Runtime refuses any session with a
    pool of its own: this package's, an app's (its own `InferenceSession` then needs
    `SessionOptions.use_per_session_threads = False`) or ONNX Runtime's quantizer's (build engines first, or in
    another process). An engine loaded with another `threads` runs on the pool as made. Asking again for the size
    already asked is harmless; another size raises EngineError. With `ASR_ENGINES_OWN_THREAD_POOLS=1` in the
    environment it does nothing (for a process that makes sessions of its own, as the test suite does)."""
    global _pool_asked
    if os.environ.get(OWN_POOLS_VARIABLE) == "1":
        logger.debug("%s=1: every ONNX Runtime session keeps a thread pool of its own", OWN_POOLS_VARIABLE)
        return
    with _pool_lock:
        size = threads or 0
        if _pool_asked is not None and _pool_asked != size:
            raise EngineError(f"this process already shares one ONNX Runtime pool of {_pool_asked or 'default'} threads; "
                              "it cannot be resized")
        _pool_asked = size


def _on_shared_pool(threads: int | None) -> bool:
    """Whether a session made now runs on the process's one pool (made here, on the first such session)."""
    global _pool_made
    with _pool_lock:
        if _pool_asked is None:
            return False
        if _pool_made is None:
            import onnxruntime

            try:
                onnxruntime.set_global_thread_pool_sizes(_pool_asked, 1)
            except Exception as error:  # made by other code of the process first: it has to serve us too
                logger.info("ONNX Runtime's global thread pool was made elsewhere; engines run on it (%s)", error)
            _pool_made = _pool_asked
        if threads and threads != _pool_made:
            logger.info("threads=%d: ONNX Runtime engines run on the process's shared pool of %s threads", threads,
                        _pool_made or "default")
        return True


def _handle(value: np.ndarray | DeviceTensor) -> np.ndarray:
    """What a CPU session reads: an array, or the array a CPU engine's output holds."""
    return value.handle if isinstance(value, DeviceTensor) else value


def _info(arg) -> TensorInfo:
    return TensorInfo(arg.name, _NUMPY_DTYPES.get(arg.type, arg.type), tuple(-1 if not isinstance(d, int) else d for d in arg.shape))


@contextmanager
def _run_errors(path: Path) -> Iterator[None]:
    """ONNX Runtime's run failures (its own exception classes, outside Python's hierarchy) as one EngineError line."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

    try:
        yield
    except (Fail, InvalidArgument, RuntimeException) as error:
        raise EngineError(f"{path.name}: ONNX Runtime could not run it ({str(error).splitlines()[0][:300]})") from None
