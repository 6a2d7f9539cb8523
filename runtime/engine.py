"""The engine protocol: one compiled graph, named numpy arrays in and out. One class per backend.

`load_engine(path)` picks the backend by the file's ending; a new backend is one more line in
BACKENDS and one more file, never a branch in the callers.
"""

from __future__ import annotations

from collections.abc import Callable
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


class Engine(Protocol):
    """What every backend offers. `run` takes and returns numpy arrays by tensor name."""

    backend: str  # "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0 NVIDIA Orin", ...
    variant: Variant | None  # what the graph was built as (from the sidecar; None without one)
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def _onnxruntime(path: Path, **settings) -> Engine:
    from runtime.onnxruntime_engine import OnnxRuntimeEngine

    return OnnxRuntimeEngine(path, **settings)


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
