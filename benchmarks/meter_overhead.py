"""CPU cost of the INA3221 sampler at 100 Hz, on a fake Orin Nano sysfs tree (real files, real reads).

    .venv/bin/python benchmarks/meter_overhead.py [--seconds 10] [--hz 100]

Prints the sampler thread's CPU time as a share of one core; the target is < 1 %. On a Jetson each sysfs
read is also an I2C transaction in the kernel (about 0.3 ms, 6 reads per sample), which this cannot show:
run `python -m measure.check_meter --meter ina3221` there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from measure.meters.ina3221 import Ina3221Meter  # noqa: E402

from sysfs_fakes import FakeBoard  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hz", type=float, default=100.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        FakeBoard(Path(root), "orin-nano")
        meter = Ina3221Meter(Path(root), sample_hz=args.hz)
        started_cpu, started = time.process_time(), time.monotonic()
        meter.start()
        time.sleep(args.seconds)
        meter.stop()
        cpu, wall = time.process_time() - started_cpu, time.monotonic() - started
    samples = len(meter._trace.times)
    print(f"{samples} samples in {wall:.2f} s ({samples / wall:.1f} Hz), late ticks {meter.late_samples}")
    print(f"sampler CPU {cpu * 1000:.0f} ms = {100 * cpu / wall:.2f} % of one core "
          f"({cpu / samples * 1e6:.0f} us per sample of {len(meter.rails)} rails)")


if __name__ == "__main__":
    main()
