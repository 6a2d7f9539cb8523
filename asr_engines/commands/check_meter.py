"""`asr-engines check-meter`: check a power meter on the real hardware, in about 15 seconds.

Reads the meter idle, under load and idle again, and prints per-rail power, the sampling rate reached, read
faults and late samples. The load runs in a child process (a matrix loop on the GPU when PyTorch sees CUDA,
else on the CPU), so it never takes the sampler's turns in this one. Where the source has an energy counter
(NVML on Volta and later, RAPL), each power source's trapezoids over the load window are compared with the
counter: for NVML both the instant field and the 1 s average, side by side, and the one the bench samples
must come within 2 %.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from asr_engines.measure.meters import METERS, Measurement, open_meter
from asr_engines.processes import in_fresh_process

COUNTER_TOLERANCE = 0.02
#: The share of the asked rate the sampler must keep under load (docs/bench.md, "Sampling rate").
RATE_KEPT = 0.98


def busy(seconds: float) -> str:
    """Keep the GPU (or else the CPU) busy for `seconds`; returns which. Runs in a child process."""
    import numpy as np

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


def other_sources(meter_name: str, root: Path, sample_hz: float | None) -> dict:
    """Power sources sampled beside the meter for comparison: NVML's other power reading."""
    if meter_name != "nvml":
        return {}
    from asr_engines.measure.meters.nvml import NvmlMeter, NvmlUnavailable

    try:
        return {"average": NvmlMeter(root, **({"sample_hz": sample_hz} if sample_hz else {}), power_source="average")}
    except NvmlUnavailable:
        return {}

EXAMPLES = """Examples:

\b
  asr-engines check-meter
  asr-engines check-meter --meter nvml --sample-hz 100 --load-s 6
"""


@click.command(epilog=EXAMPLES)
@click.option("--meter", default="auto", type=click.Choice(METERS), show_default=True)
@click.option("--root", default="/", show_default=True, help="Stands in for / when reading sysfs.")
@click.option("--sample-hz", type=float)
@click.option("--load-s", default=6.0, show_default=True)
def command(meter: str, root: str, sample_hz: float | None, load_s: float) -> None:
    """Check that METER reads sensible power at its rate, and that its energy agrees with a counter."""
    try:
        source = open_meter(meter, Path(root), sample_hz)
    except OSError as error:
        sys.exit(f"FAIL open {meter}: {error}")
    if not source.available:
        sys.exit(f"FAIL {source.name}: {source.reason}")
    click.echo(f"meter {source.name}: rails {source.rails}; total {source.total_rail or 'sum of rails'}; "
               f"gpu {source.gpu_rail} {('(shared with ' + source.gpu_rail_shares + ')') if source.gpu_rail_shares else ''}")
    click.echo(f"sensor averaging: {source.averaging or 'unknown'}; settings: {source.info()}")
    others = other_sources(source.name, Path(root), sample_hz)
    meters = {"sampled": source, **others}
    for each in meters.values():
        each.start()
    try:
        windows, loaded = {}, {}
        for phase, action in (("idle", lambda: time.sleep(2)), ("load", lambda: in_fresh_process(busy, load_s)),
                              ("after", lambda: time.sleep(2))):
            for name, each in meters.items():
                each.begin_window(f"{phase}-{name}")
            loaded[phase] = action()
            for name, each in meters.items():
                windows[phase, name] = each.end_window(f"{phase}-{name}")
    finally:
        for each in meters.values():
            each.stop()
    for phase in ("idle", "load", "after"):
        click.echo(describe(windows[phase, "sampled"]))
    idle, load = windows["idle", "sampled"], windows["load", "sampled"]
    checks = {
        f"samples arrive at >= {100 * RATE_KEPT:g} % of the rate ({load.sample_hz or 0:.1f} of {source.sample_hz:g} Hz under load)":
            load.sample_hz is not None and load.sample_hz >= RATE_KEPT * source.sample_hz,
        "no read faults": load.faults == 0 and idle.faults == 0,
        f"load raises total power (the load ran on the {loaded['load']})": load.mean_w is not None and idle.mean_w is not None
        and load.mean_w["total"] > idle.mean_w["total"],
    }
    if load.counter_energy_j and load.energy_j:
        counter = load.counter_energy_j["total"]
        for name, each in meters.items():
            trapezoids = windows["load", name].total_j
            label = getattr(each, "power_source", name)
            click.echo(f"{label}: trapezoids {trapezoids:.2f} J vs counter {counter:.2f} J over the load window: "
                       f"{100 * (trapezoids / counter - 1):+.2f} %")
        error = abs(load.total_j / counter - 1)
        checks[f"the sampled source's trapezoids within {100 * COUNTER_TOLERANCE:g} % of the energy counter"] = error < COUNTER_TOLERANCE
    wall = windows["after", "sampled"].end_s - windows["idle", "sampled"].start_s
    cpu_s = getattr(source, "sampler_cpu_s", 0.0)
    click.echo(f"sampler: {load.sample_hz or 0:.1f} Hz under load of {source.sample_hz:g} asked; late samples "
               f"{getattr(source, 'late_samples', 0)}; its own CPU {cpu_s:.2f} s ({100 * cpu_s / wall:.2f} % of a core)")
    for name, passed in checks.items():
        click.echo(f"{'PASS' if passed else 'FAIL'} {name}")
    sys.exit(0 if all(checks.values()) else 1)

