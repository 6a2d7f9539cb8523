"""The engine protocol: one compiled graph, named arrays in and out. One class per backend.

`run` takes and gives numpy arrays. `run_device` leaves outputs where the engine wrote them (GPU memory
under TensorRT or ONNX Runtime on CUDA) and takes such tensors back as inputs without a copy: what keeps
Whisper's KV cache on the device while it decodes.

`load_engine(path)` picks the backend by the file's ending; a new backend is one more line in
BACKENDS and one more file, never a branch in the callers.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from common.variants import Variant


class EngineError(RuntimeError):
    """An engine that cannot be loaded or run here; the message says what to do."""


@dataclass(frozen=True)
class TensorInfo:
    """A graph input or output: name, numpy dtype name and shape (-1 or a name for dynamic dims)."""

    name: str
    dtype: str
    shape: tuple


@dataclass(frozen=True)
class DeviceTensor:
    """An output left where its engine wrote it. Feed it to another run of a graph of the same backend
    without a copy; only that backend reads `handle` (a device address for TensorRT, an OrtValue for ONNX
    Runtime). It stays valid until its engine runs again without it among the inputs."""

    backend: str
    shape: tuple[int, ...]
    dtype: str
    handle: object


Feeds = Mapping[str, "np.ndarray | DeviceTensor"]


class Engine(Protocol):
    """What every backend offers: `run` with numpy arrays by tensor name, and `run_device`."""

    backend: str  # "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0 NVIDIA Orin", ...
    variant: Variant | None  # what the graph was built as (from the sidecar; None without one)
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def run_device(self, feeds: Feeds, to_host: Collection[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, DeviceTensor]]:
        """Inputs as host arrays (copied in) or device tensors of this backend (read where they lie). Every
        output comes back as a device tensor; those named in `to_host` also as host arrays."""
        ...

    def close(self) -> None: ...


def _onnxruntime(path: Path, **settings) -> Engine:
    from runtime.onnxruntime_engine import OnnxRuntimeEngine

    try:
        return OnnxRuntimeEngine(path, **settings)
    except ImportError:
        raise EngineError(f"{path}: needs ONNX Runtime: pip install 'asr-engines[cpu]' (or [gpu]; on a Jetson, "
                          "NVIDIA's onnxruntime-gpu wheel)") from None


def _tensorrt(path: Path, **settings) -> Engine:
    from runtime.tensorrt_engine import load_tensorrt_engine

    return load_tensorrt_engine(path, **settings)


#: file ending -> the loader of its backend. A new backend is one more line here and one more file.
BACKENDS: dict[str, Callable[..., Engine]] = {".onnx": _onnxruntime, ".plan": _tensorrt, ".engine": _tensorrt}


def load_engine(path: str | Path, variant: Variant | None = None, threads: int | None = None,
                takes_turns: bool = False) -> Engine:
    """Load one engine file (`.onnx` with ONNX Runtime, `.plan`/`.engine` with TensorRT).

    `threads` caps CPU threads where the backend uses them (ONNX Runtime on a CPU); `takes_turns` says the
    engine alternates with others on the same cores (Whisper's three graphs), so its idle threads must sleep.
    """
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: no such engine file")
    if path.suffix not in BACKENDS:
        raise EngineError(f"{path}: unknown engine type {path.suffix!r}; expected one of {', '.join(BACKENDS)}")
    return BACKENDS[path.suffix](path, variant=variant, threads=threads, takes_turns=takes_turns)
