"""`asr-engines check-device [ONNX_DIR]` (`make check-device`): check the TensorRT layer on this machine.

Needs only what `make install-jetson` installs (numpy, onnx, ONNX Runtime, TensorRT, pycuda, Polygraphy):
the model it builds is a small CTC graph written with onnx.helper (check_device/tiny_model.py), not an
export. Each precision is built and run as its own steps, timed, so one failing precision does not hide
the others: fp32 and fp16 plans are compared with ONNX Runtime fp32 (output SQNR), the int8 plan with the
fp32 plan (SQNR and the share of frames that keep their best token), each plan's layer precisions are
shown, buffers are reused at a shorter input, then the power meter is read around a run. Given ONNX_DIR
(a real model from `asr-engines export`, Whisper included) it also builds that model's plans and checks their
WER against ONNX Runtime fp32 from the same ONNX. One PASS/FAIL line per step; exit code 1 if any failed.
"""

from __future__ import annotations

import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.extras import require
from asr_engines.manifest import EngineManifest
from asr_engines.variants import PRECISIONS, Precision

#: Output SQNR a plan must keep against ONNX Runtime fp32: TF32 off, fp32 agrees to rounding; fp16 keeps ~11 bits a step.
MINIMUM_SQNR_DB = {Precision.FP32: 40.0, Precision.FP16: 25.0}
#: The int8 plan against the fp32 plan: ONNX Runtime's int8 of the same graph on a CPU keeps 33 dB and 97.6 %
#: of frames' best token (measured); these leave room for another calibrator's scales, not for a broken build.
INT8_MINIMUM_SQNR_DB, INT8_MINIMUM_AGREEMENT = 20.0, 0.90
#: WER points a real model's plan may add to ONNX Runtime fp32 on the same utterances (int8 on a CPU: +0.2 on Whisper tiny.en).
MAXIMUM_WER_INCREASE = {Precision.FP32: 0.5, Precision.FP16: 1.0, Precision.INT8: 3.0}
RUNS = 20  # timed runs per plan


def sqnr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    return float(10 * np.log10(np.var(reference) / max(np.var(actual - reference), 1e-30)))


class Checks:
    """Runs steps, prints one PASS/FAIL line with its time for each, and counts the failures."""

    def __init__(self) -> None:
        self.failed = 0

    def step(self, name: str, function: Callable):
        started = time.perf_counter()
        try:
            detail = function()
        except Exception as error:  # a check reports every failure and goes on to the next step
            self.failed += 1
            print(f"FAIL {name} ({time.perf_counter() - started:.1f} s): {type(error).__name__}: {error}", flush=True)
            if not isinstance(error, (AssertionError, RuntimeError)):  # ours say what is wrong; others are bugs to locate
                traceback.print_exc(limit=3, file=sys.stderr)
            return None
        shown = f": {detail}" if isinstance(detail, str) else ""
        print(f"PASS {name} ({time.perf_counter() - started:.1f} s){shown}", flush=True)
        return detail if detail is not None else True

EXAMPLES = """Examples:

\b
  asr-engines check-device
  asr-engines check-device onnx/whisper-tiny.en --utterances 20
"""


@click.command(epilog=EXAMPLES)
@click.argument("onnx_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--utterances", "count", default=20, show_default=True, help="Utterances transcribed for ONNX_DIR's WER check.")
def command(onnx_dir: Path | None, count: int) -> None:
    """Check TensorRT + pycuda here on a small CTC graph; on ONNX_DIR's model too when given."""
    checks = Checks()
    work = Path(tempfile.mkdtemp(prefix="check-device-"))
    feeds = checks.step("write a small CTC model and run it with ONNX Runtime", lambda: _tiny_model(work))
    if checks.step("import tensorrt, pycuda, polygraphy", _imports) is None:
        print("nothing more to check without them (on a Jetson: make install-jetson)")
        sys.exit(1)
    if feeds is not None:
        _check_tiny_plans(checks, work, feeds)
    if onnx_dir is not None:
        require("asr-engines check-device ONNX_DIR", "bench")  # WER needs jiwer and the normaliser
        _check_model(checks, onnx_dir, work, count)
    print(f"{'all checks passed' if not checks.failed else f'{checks.failed} checks failed'} (work files in {work})")
    sys.exit(1 if checks.failed else 0)


def _tiny_model(work: Path) -> dict:
    import onnxruntime

    from asr_engines.calibration.datasets import load_dataset
    from asr_engines.check_device.tiny_model import write_tiny_export
    from asr_engines.features import CTCFrontEnd

    onnx_dir = write_tiny_export(work / "onnx")
    longest = max(load_dataset(), key=lambda utterance: utterance.audio_path.stat().st_size)
    feeds = CTCFrontEnd()(longest.load()[: 8 * SAMPLE_RATE])  # 8 s of real speech, then 4 s in the same buffers
    session = onnxruntime.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    return {"feeds": feeds, "reference": session.run(None, feeds)[0]}


def _imports() -> str:
    try:
        import tensorrt
    except ImportError:
        raise RuntimeError("TensorRT not installed (its Python bindings come with JetPack: sudo apt install python3-libnvinfer)") from None
    try:
        import polygraphy
        import pycuda.autoprimaryctx  # noqa: F401
        import pycuda.driver as cuda
    except ImportError as error:
        raise RuntimeError(f"{error.name} not installed") from None
    device = cuda.Context.get_device()
    return f"TensorRT {tensorrt.__version__}, Polygraphy {polygraphy.__version__}, {device.name()} (sm {device.compute_capability()})"


def _check_tiny_plans(checks: Checks, work: Path, tiny: dict) -> None:
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import CalibrationSettings, build_engines
    from asr_engines.engines.trt.options import TensorRTOptions
    from asr_engines.manifest import load_manifest

    builder = make_builder("tensorrt", TensorRTOptions(timing_cache=work / "engines" / "timing.cache"))
    outputs: dict[Precision, np.ndarray] = {}
    for precision in PRECISIONS:
        built = checks.step(f"build the {precision} plan", lambda precision=precision: build_engines(
            work / "onnx", work / "engines", builder, [precision], CalibrationSettings(count=16), progress=False))
        if not built:
            continue
        manifest = load_manifest(built[0])
        outputs[precision] = checks.step(f"run the {precision} plan", lambda manifest=manifest: _run_plan(manifest, tiny["feeds"]))
        if outputs[precision] is None:
            continue
        reference = outputs.get(Precision.FP32) if precision == Precision.INT8 else tiny["reference"]
        checks.step(f"{precision} plan's output", lambda precision=precision, reference=reference, manifest=manifest: _judge(
            precision, reference, outputs[precision], manifest))
    if Precision.FP16 in outputs:
        checks.step("power meter reads energy around a run", lambda: _meter(work, tiny["feeds"]))


def _run_plan(manifest: EngineManifest, feeds: dict) -> np.ndarray:
    """The plan's logits at 8 s, then at 4 s in the same buffers; mean latency over RUNS runs."""
    from asr_engines.runtime.backends import load_engine

    engine = load_engine(manifest.graph_path("model"), variant=manifest.variant)
    output = engine.run(feeds)["logits"]
    shorter = engine.run({"input_values": feeds["input_values"][:, : 4 * SAMPLE_RATE]})["logits"]
    if not np.isfinite(output).all() or shorter.shape[1] >= output.shape[1]:
        raise AssertionError(f"non-finite output, or the wrong shape on reuse ({shorter.shape})")
    started = time.perf_counter()
    for _ in range(RUNS):
        engine.run(feeds)
    print(f"     {(time.perf_counter() - started) / RUNS * 1000:.2f} ms per 8 s of audio on {engine.device}")
    engine.close()
    return output


def _judge(precision: Precision, reference: np.ndarray | None, output: np.ndarray, manifest: EngineManifest) -> str:
    build = manifest.build["model"]
    layers = f"layers {build.get('layer_precisions')}" + (f"; {build['int8_check']}" if build.get("int8_check") else "")
    if reference is None:
        raise AssertionError(f"no {'fp32 plan' if precision == Precision.INT8 else 'reference'} output to compare with")
    quality = sqnr_db(reference, output)
    if precision == Precision.INT8:
        agreement = float(np.mean(output.argmax(-1) == reference.argmax(-1)))
        if quality < INT8_MINIMUM_SQNR_DB or agreement < INT8_MINIMUM_AGREEMENT:
            raise AssertionError(f"against the fp32 plan: SQNR {quality:.1f} dB (>= {INT8_MINIMUM_SQNR_DB:g} needed), "
                                 f"{100 * agreement:.1f} % of frames keep their token (>= {100 * INT8_MINIMUM_AGREEMENT:g} % needed)")
        return f"SQNR {quality:.1f} dB and {100 * agreement:.1f} % of frames' tokens against the fp32 plan; {layers}"
    if quality < MINIMUM_SQNR_DB[precision]:
        raise AssertionError(f"SQNR {quality:.1f} dB against ONNX Runtime fp32 (>= {MINIMUM_SQNR_DB[precision]:g} needed)")
    return f"SQNR {quality:.1f} dB against ONNX Runtime fp32; {layers}"


def _meter(work: Path, feeds: dict) -> str:
    from asr_engines.measure.meters import open_meter
    from asr_engines.runtime.backends import load_engine

    meter = open_meter("auto")
    if not meter.available:
        raise RuntimeError(meter.reason)
    engine = load_engine(work / "engines" / "check-fp16.plan")
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


def _check_model(checks: Checks, onnx_dir: Path, work: Path, count: int) -> None:
    """Plans of an exported model against ONNX Runtime fp32 from the same ONNX, by WER on `count` utterances,
    each precision built and judged as its own steps."""
    from asr_engines.calibration.datasets import load_dataset
    from asr_engines.engines.backends import make_builder
    from asr_engines.engines.build import build_engines
    from asr_engines.measure.wer import corpus_wer
    from asr_engines.runtime.recognizer import load_recognizer

    utterances = load_dataset()[:count]
    references = [utterance.text for utterance in utterances]
    audio = [utterance.load() for utterance in utterances]

    def transcribe(manifest: Path) -> float:
        recognizer = load_recognizer(manifest)
        try:
            return corpus_wer(references, [recognizer.transcribe(samples) for samples in audio]).wer
        finally:
            recognizer.close()

    (reference,) = build_engines(onnx_dir, work / "model-onnxruntime", make_builder("onnxruntime"), [Precision.FP32], progress=False)
    baseline = transcribe(reference)
    print(f"     ONNX Runtime fp32: {baseline:.2f} % WER on {count} utterances")
    builder = make_builder("tensorrt")
    for precision in PRECISIONS:
        built = checks.step(f"build {onnx_dir} {precision} plans", lambda precision=precision: build_engines(
            onnx_dir, work / "model-plans", builder, [precision], progress=False))
        for manifest in built or ():
            def compare(manifest=manifest, precision=precision) -> str:
                wer = transcribe(manifest)
                if wer - baseline > MAXIMUM_WER_INCREASE[precision]:
                    raise AssertionError(f"{wer:.2f} % WER, {wer - baseline:+.2f} points over ONNX Runtime fp32 "
                                         f"(allowed {MAXIMUM_WER_INCREASE[precision]:+.1f})")
                return f"{wer:.2f} % WER ({wer - baseline:+.2f} points vs ONNX Runtime fp32)"

            checks.step(f"{manifest.stem} transcribes like ONNX Runtime", compare)

