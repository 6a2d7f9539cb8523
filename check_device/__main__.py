"""`make check-device` (python -m check_device [ONNX_DIR]): verify the TensorRT layer on this machine.

On a Jetson (or any machine with TensorRT, pycuda and a GPU): builds a small random-weight wav2vec2 at
fp32, fp16 and int8 as TensorRT plans, runs each on real speech through the pycuda runtime, compares the
outputs with ONNX Runtime, checks the layer precisions, then reads the power meter around a run. Given
ONNX_DIR (a real model from `python -m export`, Whisper included), it also builds that model's plans and
compares their transcripts' WER with ONNX Runtime fp32 from the same ONNX. One PASS/FAIL line per step;
exit code 1 if any step failed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import click
import numpy as np

from common.audio import SAMPLE_RATE
from common.variants import Variant

MINIMUM_SQNR_DB = {"fp32": 40.0, "fp16": 25.0}  # TF32 off: fp32 agrees to rounding; fp16 ~11 bits per op
#: WER points a plan may add to ONNX Runtime fp32 on the same utterances (int8 on a CPU: +0.2 on Whisper tiny.en).
MAXIMUM_WER_INCREASE = {"fp32": 0.5, "fp16": 1.0, "int8": 3.0}


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


@click.command()
@click.argument("onnx_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--utterances", "count", default=20, show_default=True, help="Utterances transcribed for ONNX_DIR's WER check.")
def main(onnx_dir: Path | None, count: int) -> None:
    """Check TensorRT + pycuda here: a small random wav2vec2 always; ONNX_DIR's model too when given."""
    from calibration.datasets import load_dataset
    from common.features import CTCFrontEnd

    checks = Checks()
    checks.step("import tensorrt, pycuda, polygraphy", _imports)
    work = Path(tempfile.mkdtemp(prefix="check-device-"))
    speech = load_dataset()[0].load()[: 8 * SAMPLE_RATE]
    feeds = CTCFrontEnd()(speech)
    exported = checks.step("export a small random wav2vec2", lambda: _export(work))
    if exported is None:
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
            engine = load_engine(plan, variant=Variant(precision))
            output = engine.run(feeds)["logits"]
            again = engine.run({"input_values": feeds["input_values"][:, : 4 * SAMPLE_RATE]})["logits"]  # buffers reused
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
    if onnx_dir is not None:
        _check_model(checks, onnx_dir, work, count)
    print(f"{'all checks passed' if not checks.failed else f'{checks.failed} checks failed'} (work files in {work})")
    sys.exit(1 if checks.failed else 0)


def _check_model(checks: Checks, onnx_dir: Path, work: Path, count: int) -> None:
    """Plans of an exported model against ONNX Runtime fp32 from the same ONNX, by WER on `count` utterances."""
    from calibration.datasets import load_dataset
    from engines.build import build_engines
    from engines.builder import make_builder
    from measure.wer import corpus_wer
    from runtime import load_recognizer

    utterances = load_dataset()[:count]
    references = [utterance.text for utterance in utterances]
    audio = [utterance.load() for utterance in utterances]

    def transcribe(sidecar: Path) -> float:
        recognizer = load_recognizer(sidecar)
        try:
            return corpus_wer(references, [recognizer.transcribe(samples) for samples in audio]).wer
        finally:
            recognizer.close()

    (reference,) = build_engines(onnx_dir, work / "model-onnxruntime", make_builder("onnxruntime"), ["fp32"], progress=False)
    baseline = transcribe(reference)
    print(f"     ONNX Runtime fp32: {baseline:.2f} % WER on {count} utterances")
    plans = checks.step(f"build {onnx_dir} fp32/fp16/int8 plans",
                        lambda: build_engines(onnx_dir, work / "model-plans", make_builder("tensorrt")))
    for sidecar in plans or ():
        precision = json.loads(sidecar.read_text())["precision"]

        def compare(sidecar=sidecar, precision=precision) -> str:
            wer = transcribe(sidecar)
            if wer - baseline > MAXIMUM_WER_INCREASE[precision]:
                raise AssertionError(f"{wer:.2f} % WER, {wer - baseline:+.2f} points over ONNX Runtime fp32 "
                                     f"(allowed {MAXIMUM_WER_INCREASE[precision]:+.1f})")
            return f"{wer:.2f} % WER ({wer - baseline:+.2f} points vs ONNX Runtime fp32)"

        checks.step(f"{sidecar.stem} transcribes like ONNX Runtime", compare)


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
    engine = load_engine(work / "engines" / "check-fp16.plan", variant=Variant.FP16)
    meter.start()
    with meter.window("fp16 loop") as window:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            engine.run(feeds)
    meter.stop()
    result = window.measurement
    if not result.reliable:
        raise RuntimeError(result.note)
    rail = meter.total_rail or "sum of rails"
    return f"{meter.name}: {result.total_j:.2f} J in {result.duration_s:.2f} s at {result.sample_hz:.0f} Hz on {rail}"


if __name__ == "__main__":
    main()
