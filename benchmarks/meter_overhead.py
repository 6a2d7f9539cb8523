"""The INA3221 sampler at 100 Hz on a fake Orin Nano sysfs tree (real files, real reads): the rate it keeps and
its CPU cost, idle, while the same process decodes Whisper tiny.en (as in a bench worker), and while it decodes
with every core also saturated by other processes (a loaded machine).

    .venv/bin/python -m benchmarks.meter_overhead [--seconds 10] [--hz 100] [--model ../shared/models/whisper-tiny.en-hf]

The cost is the sampler thread's own CPU time (time.thread_time in the thread) over the wall time, as a share
of one core; the rate is samples over wall time, with the ticks it skipped. The last line reads
`rate_hz=X cost_core_pct=Y` for the saturated phase (goal: X >= 98 at 100 Hz asked, Y < 1.5). On a Jetson each
sysfs read is also an I2C transaction in the kernel (about 0.3 ms), which a fake tree cannot show:
`asr-engines check-meter --meter ina3221` there.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from asr_engines import load_recognizer
from asr_engines.calibration.datasets import load_dataset
from asr_engines.commands.check_meter import busy
from asr_engines.engines.backends import make_builder
from asr_engines.engines.build import build_engines
from asr_engines.export import export_onnx, resolve_model
from asr_engines.measure.meters.ina3221 import Ina3221Meter
from asr_engines.variants import Precision
from stand_ins.sysfs import FakeBoard

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "bench-meter-overhead"


def sample(meter: Ina3221Meter, seconds: float, work=None) -> dict:
    """Run the sampler for `seconds` while `work()` runs in this process again and again (or while it sleeps)."""
    samples_before, late_before = len(meter._trace.times), meter.late_samples
    meter.start()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        work() if work else time.sleep(0.05)
    meter.stop()
    wall = time.monotonic() - started
    samples = len(meter._trace.times) - samples_before
    return {"rate_hz": samples / wall, "late": meter.late_samples - late_before, "cost_pct": 100 * meter.sampler_cpu_s / wall,
            "us_per_sample": 1e6 * meter.sampler_cpu_s / max(samples, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hz", type=float, default=100.0)
    parser.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "whisper-tiny.en-hf")
    args = parser.parse_args()
    if not (WORK / "onnx" / "export.json").is_file():
        export_onnx(resolve_model(str(args.model)), WORK / "onnx", check=False)
    (manifest,) = build_engines(WORK / "onnx", WORK / "engines", make_builder("onnxruntime"), [Precision.FP32], progress=False)
    recognizer = load_recognizer(manifest, threads=2)
    audio = [utterance.load() for utterance in load_dataset()[:10]]
    position = [0]

    def decode_next() -> None:
        recognizer.transcribe(audio[position[0] % len(audio)])
        position[0] += 1

    with tempfile.TemporaryDirectory() as root:
        FakeBoard(Path(root), "orin-nano")
        results = {"idle": sample(Ina3221Meter(Path(root), sample_hz=args.hz), args.seconds),
                   "decoding whisper tiny.en": sample(Ina3221Meter(Path(root), sample_hz=args.hz), args.seconds, decode_next)}
        load = [multiprocessing.get_context("spawn").Process(target=busy, args=(args.seconds + 30,), daemon=True)
                for _ in range(os.cpu_count() or 1)]
        for process in load:
            process.start()
        try:
            time.sleep(2)  # the load processes import and warm up
            results["decoding, all cores loaded"] = sample(Ina3221Meter(Path(root), sample_hz=args.hz), args.seconds, decode_next)
        finally:
            for process in load:
                process.terminate()
    print(f"INA3221 sampler at {args.hz:g} Hz asked, 3 rails, {args.seconds:g} s per phase ({position[0]} utterances decoded; "
          f"load average {os.getloadavg()[0]:.2f} at the end)")
    print(f"{'phase':<28}{'rate Hz':>9}{'late ticks':>12}{'CPU % of a core':>17}{'us per sample':>15}")
    for phase, result in results.items():
        print(f"{phase:<28}{result['rate_hz']:>9.1f}{result['late']:>12}{result['cost_pct']:>17.2f}{result['us_per_sample']:>15.0f}")
    saturated = results["decoding, all cores loaded"]
    print(f"rate_hz={saturated['rate_hz']:.1f} cost_core_pct={saturated['cost_pct']:.2f}")


if __name__ == "__main__":
    main()
