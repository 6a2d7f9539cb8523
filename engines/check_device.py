"""`make check-device` (python -m engines.check_device): verify the TensorRT layer on this machine.

On a Jetson (or any machine with TensorRT, pycuda and a GPU): builds a small random-weight wav2vec2 at
fp32, fp16 and int8 as TensorRT plans, runs each on real speech through the pycuda runtime, compares the
outputs with ONNX Runtime, checks the layer precisions, then reads the power meter around a run. One
PASS/FAIL line per step; exit code 1 if any step failed.
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

MINIMUM_SQNR_DB = {"fp32": 40.0, "fp16": 25.0}  # TF32 off: fp32 agrees to rounding; fp16 ~11 bits per op


def sqnr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    return float(10 * np.log10(np.var(reference) / max(np.var(actual - reference), 1e-30)))


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def step(self, name: str, function):
        try:
            detail = function()
        except Exception as error:  # a check reports every failure and goes on to the next step
            self.failed += 1
            print(f"FAIL {name}: {type(error).__name__}: {error}")
            traceback.print_exc(limit=2, file=sys.stderr)
            return None
        print(f"PASS {name}" + (f": {detail}" if isinstance(detail, str) else ""))
        return detail


def main() -> None:
    from calibration.datasets import load_dataset
    from calibration.features import CTCFrontEnd

    checks = Checks()
    checks.step("import tensorrt, pycuda, polygraphy", _imports)
    work = Path(tempfile.mkdtemp(prefix="check-device-"))
    speech = load_dataset()[0].load()[: 8 * 16000]
    feeds = CTCFrontEnd()(speech)
    onnx_dir = checks.step("export a small random wav2vec2", lambda: _export(work))
    if onnx_dir is None:
        sys.exit(1)
    import onnxruntime

    reference = onnxruntime.InferenceSession(str(work / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    from engines.build import CalibrationSettings, build_engines
    from engines.builder import make_builder
    from engines.sidecar import read_sidecar
    from runtime import load_engine

    built = checks.step("build fp32/fp16/int8 plans", lambda: build_engines(
        work / "onnx", work / "engines", make_builder("tensorrt"), calibration=CalibrationSettings(count=16), progress=False))
    for precision in ("fp32", "fp16", "int8") if built else ():
        sidecar = read_sidecar(work / "engines" / f"check-{precision}.json")
        plan = work / "engines" / sidecar["files"]["model"]

        def compare(precision=precision, plan=plan, sidecar=sidecar):
            engine = load_engine(plan, precision=precision)
            output = engine.run(feeds)["logits"]
            again = engine.run({"input_values": feeds["input_values"][:, : 4 * 16000]})["logits"]  # buffers reused
            counts = sidecar["build"]["model"]["layer_precisions"]
            quality = sqnr_db(reference, output)
            if not np.isfinite(output).all() or again.shape[1] >= output.shape[1]:
                raise AssertionError(f"non-finite output or wrong shape on reuse ({again.shape})")
            if precision in MINIMUM_SQNR_DB and quality < MINIMUM_SQNR_DB[precision]:
                raise AssertionError(f"SQNR {quality:.1f} dB vs ONNX Runtime < {MINIMUM_SQNR_DB[precision]} dB")
            return f"SQNR {quality:.1f} dB vs ONNX Runtime fp32; layers {counts}; {engine.device}"

        checks.step(f"{precision} plan runs and matches ONNX Runtime", compare)
    if built:
        checks.step("power meter reads energy around a run", lambda: _meter(work, feeds))
    print(f"{'all checks passed' if not checks.failed else f'{checks.failed} checks failed'} (work files in {work})")
    sys.exit(1 if checks.failed else 0)


def _imports() -> str:
    import polygraphy
    import pycuda.autoprimaryctx  # noqa: F401
    import pycuda.driver as cuda
    import tensorrt

    device = cuda.Context.get_device()
    return f"TensorRT {tensorrt.__version__}, Polygraphy {polygraphy.__version__}, {device.name()} (sm {device.compute_capability()})"


def _export(work: Path) -> Path:
    import shutil

    from export import export_onnx
    from export.models import ModelSource
    from export.random_models import random_checkpoint

    folder = random_checkpoint("wav2vec2-base", hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
    renamed = work / "check"
    shutil.copytree(folder, renamed)
    report = export_onnx(ModelSource("check", str(renamed), "ctc"), work / "onnx")
    return f"ONNX vs PyTorch max abs diff {report.max_abs_diff:.2g}"


def _meter(work: Path, feeds) -> str:
    from measure.meters import open_meter
    from runtime import load_engine

    meter = open_meter("auto")
    if not meter.available:
        raise RuntimeError(meter.reason)
    engine = load_engine(work / "engines" / "check-fp16.plan", precision="fp16")
    meter.start()
    with meter.window("fp16 loop") as window:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            engine.run(feeds)
    meter.stop()
    result = window.measurement
    if not result.reliable:
        raise RuntimeError(result.note)
    return f"{meter.name}: {result.total_j:.2f} J in {result.duration_s:.2f} s at {result.sample_hz:.0f} Hz on {meter.total_rail or 'sum of rails'}"


if __name__ == "__main__":
    main()
