"""ONNX Runtime behind the engine protocol: CPU here; CUDA or TensorRT execution providers when installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.variants import Variant
from runtime.engine import EngineError, TensorInfo

_NUMPY_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
                 "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}
#: Preferred execution providers, best first; only those this onnxruntime build has are used.
PROVIDER_ORDER = ("CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxRuntimeEngine:
    """One ONNX file in an InferenceSession. Inputs are cast to each input's declared dtype."""

    backend = "onnxruntime"

    def __init__(self, path: Path, variant: Variant | None = None, threads: int | None = None,
                 providers: list[str] | None = None, takes_turns: bool = False):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if takes_turns:
            # Sessions taking turns (Whisper's three graphs): spinning idle threads of one steal the cores the
            # next needs (measured: encoder 180 -> 110 ms per call). A lone session spins: ~5 % faster.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = onnxruntime.get_available_providers()
        chosen = providers or [provider for provider in PROVIDER_ORDER if provider in available]
        try:
            self._session = onnxruntime.InferenceSession(str(path), options, providers=chosen)
        except Exception as error:  # onnxruntime raises its own untyped errors for bad files
            raise EngineError(f"{path}: ONNX Runtime cannot load it ({str(error).splitlines()[0]})") from None
        self.variant = variant
        provider = self._session.get_providers()[0]
        self.device = "cpu" if provider == "CPUExecutionProvider" else provider.removesuffix("ExecutionProvider").lower()
        self.inputs = [_info(arg) for arg in self._session.get_inputs()]
        self.outputs = [_info(arg) for arg in self._session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cast = {info.name: np.asarray(feeds[info.name], dtype=info.dtype) for info in self.inputs}
        results = self._session.run(None, cast)
        return {info.name: result for info, result in zip(self.outputs, results)}

    def close(self) -> None:
        self._session = None


def _info(arg) -> TensorInfo:
    return TensorInfo(arg.name, _NUMPY_DTYPES.get(arg.type, arg.type), tuple(-1 if not isinstance(d, int) else d for d in arg.shape))
