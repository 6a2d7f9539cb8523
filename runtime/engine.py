"""The engine protocol: one compiled graph, named arrays in and out. One class per backend.

`run` takes and gives numpy arrays. `run_device` leaves outputs where the engine wrote them (GPU memory
under TensorRT or ONNX Runtime on CUDA) and takes such tensors back as inputs without a copy: what keeps
Whisper's KV cache on the device while it decodes.

`load_engine(path)` (backends.py) picks the backend by the file's ending.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from asr_engines.variants import Variant


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
    without a copy; only that backend reads `handle` (a device address for TensorRT; for ONNX Runtime an
    OrtValue on CUDA, a numpy array on a CPU). It stays valid until its engine runs again without it among the
    inputs."""

    backend: str
    shape: tuple[int, ...]
    dtype: str
    handle: object


Feeds = Mapping[str, "np.ndarray | DeviceTensor"]


class InFlight:
    """Calls in flight on something that holds engines: `close()` waits for them to finish, and a call after it is
    refused with EngineError (not an AttributeError from a freed engine)."""

    def __init__(self, name: str):
        self._name = name
        self._condition = threading.Condition()
        self._calls = 0
        self._closed = False

    @contextmanager
    def call(self) -> Iterator[None]:
        with self._condition:
            if self._closed:
                raise EngineError(f"{self._name} is closed; load it again to transcribe")
            self._calls += 1
        try:
            yield
        finally:
            with self._condition:
                self._calls -= 1
                self._condition.notify_all()

    def close(self) -> bool:
        """Refuse new calls, wait for those in flight; True the first time (the caller frees its engines then)."""
        with self._condition:
            first, self._closed = not self._closed, True
            self._condition.wait_for(lambda: self._calls == 0)
        return first


class ClosedOnExit:
    """`with` support for what holds an engine's memory (engines, recognizers): `close()` on leaving the block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class Engine(Protocol):
    """What every backend offers: `run` with numpy arrays by tensor name, and `run_device`."""

    backend: str  # "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0 NVIDIA Orin", ...
    variant: Variant | None  # what the graph was built as (from the manifest; None without one)
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def run_device(self, feeds: Feeds, to_host: Collection[str] = ()) -> tuple[dict[str, np.ndarray], dict[str, DeviceTensor]]:
        """Inputs as host arrays (copied in) or device tensors of this backend (read where they lie). Every
        output comes back as a device tensor; those named in `to_host` also as host arrays."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc_info) -> None: ...
