"""Which backend runs an engine file: the registry, apart from the protocol (engine.py) its backends import.
A new backend is one more file and one more line in BACKENDS, never a branch in the callers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from asr_engines.runtime.engine import Engine, EngineError
from asr_engines.variants import Variant


def _onnxruntime(path: Path, **settings) -> Engine:
    from asr_engines.runtime.onnxruntime_engine import OnnxRuntimeEngine

    try:
        return OnnxRuntimeEngine(path, **settings)
    except ImportError:
        raise EngineError(f"{path}: needs ONNX Runtime: pip install 'asr-engines[cpu]' (or [gpu]; on a Jetson, "
                          "NVIDIA's onnxruntime-gpu wheel)") from None


def _tensorrt(path: Path, **settings) -> Engine:
    from asr_engines.runtime.tensorrt_engine import load_tensorrt_engine

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


def share_thread_pool(threads: int | None = None) -> None:
    """Run every CPU engine this process loads from now on over one pool of `threads` threads (ONNX Runtime's; TensorRT
    runs on the GPU and has none): Whisper's graphs, taking turns on it, are about 30 % faster on two cores. Process-wide,
    with consequences for other ONNX Runtime code of the process: runtime/onnxruntime_engine.py says which."""
    from asr_engines.runtime.onnxruntime_engine import share_thread_pool as share_onnxruntime_pool

    share_onnxruntime_pool(threads)
