"""`python -m measure.check_meter`: check a power meter on the real hardware, in 15 seconds.

Reads the meter idle, under load and idle again, and prints per-rail power, the sampling rate reached,
read faults and late samples. Where the source has an energy counter (NVML on Volta and later, RAPL), the
trapezoid energy of the load window is compared with the counter: PASS within 1 %. The load is a matrix
loop on the GPU when PyTorch sees CUDA, else on the CPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from common.extras import require

require("python -m measure.check_meter", "bench")

import click
import numpy as np

from measure.meters import METERS, Measurement, open_meter


def busy(seconds: float) -> str:
    """Keep the GPU (or else the CPU) busy for `seconds`; returns which."""
    deadline = time.monotonic() + seconds
    try:
        import torch

        if torch.cuda.is_available():
            a = torch.randn(4096, 4096, device="cuda")
            while time.monotonic() < deadline:
                a = torch.tanh(a @ a)
                torch.cuda.synchronize()
            return "gpu"
    except ImportError:
        pass
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    while time.monotonic() < deadline:
        a = np.tanh(a @ a)
    return "cpu"


def describe(measurement: Measurement) -> str:
    if measurement.mean_w is None:
        return f"{measurement.name}: no energy ({measurement.note})"
    rails = ", ".join(f"{rail} {watts:.2f} W" for rail, watts in measurement.mean_w.items())
    return f"{measurement.name}: {measurement.duration_s:.2f} s at {measurement.sample_hz:.0f} Hz; {rails}"


@click.command()
@click.option("--meter", default="auto", type=click.Choice(METERS), show_default=True)
@click.option("--root", default="/", show_default=True, help="Stands in for / when reading sysfs.")
@click.option("--sample-hz", type=float)
@click.option("--load-s", default=6.0, show_default=True)
def main(meter: str, root: str, sample_hz: float | None, load_s: float) -> None:
    """Check that METER reads sensible power at its rate, and that its energy agrees with a counter."""
    try:
        source = open_meter(meter, Path(root), sample_hz)
    except OSError as error:
        sys.exit(f"FAIL open {meter}: {error}")
    if not source.available:
        sys.exit(f"FAIL {source.name}: {source.reason}")
    click.echo(f"meter {source.name}: rails {source.rails}; total {source.total_rail or 'sum of rails'}; "
               f"gpu {source.gpu_rail} {('(shared with ' + source.gpu_rail_shares + ')') if source.gpu_rail_shares else ''}")
    click.echo(f"settings: {source.info()}")
    source.start()
    try:
        with source.window("idle") as idle:
            time.sleep(2)
        with source.window("load") as load:
            device = busy(load_s)
        with source.window("after") as after:
            time.sleep(2)
    finally:
        source.stop()
    for window in (idle, load, after):
        click.echo(describe(window.measurement))
    result = load.measurement
    checks = {
        "samples arrive at >= 90 % of the rate": result.sample_hz is not None and result.sample_hz >= 0.9 * source.sample_hz,
        "no read faults": result.faults == 0 and idle.measurement.faults == 0,
        f"{device} load raises total power": result.mean_w is not None and idle.measurement.mean_w is not None
        and result.mean_w["total"] > idle.measurement.mean_w["total"],
    }
    if result.counter_energy_j and result.energy_j:
        error = abs(result.energy_j["total"] / result.counter_energy_j["total"] - 1)
        click.echo(f"trapezoids {result.energy_j['total']:.2f} J vs counter {result.counter_energy_j['total']:.2f} J: {100 * error:.2f} %")
        checks["trapezoids within 1 % of the energy counter"] = error < 0.01
    click.echo(f"late samples: {getattr(source, 'late_samples', 0)}")
    for name, passed in checks.items():
        click.echo(f"{'PASS' if passed else 'FAIL'} {name}")
    sys.exit(0 if all(checks.values()) else 1)


if __name__ == "__main__":
    main()
