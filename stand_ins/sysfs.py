"""Fake sysfs trees, written as real files, for the boards the meters must read, and a thread that
drives their values along a known power trace (so integrated energy can be checked against the exact integral)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

# (device, layout, [(channel, rail)]) per board, as jetson-stats finds them.
BOARDS = {
    "orin-nano": [("1-0040", "hwmon", [(1, "VDD_IN"), (2, "VDD_CPU_GPU_CV"), (3, "VDD_SOC")])],
    "agx-orin": [
        ("1-0040", "hwmon", [(1, "VDD_GPU_SOC"), (2, "VDD_CPU_CV"), (3, "VIN_SYS_5V0")]),
        ("1-0041", "hwmon", [(1, "NC"), (2, "VDDQ_VDD2_1V8AO"), (3, "NC")]),
    ],
    "nano": [("6-0040", "iio", [(0, "POM_5V_IN"), (1, "POM_5V_GPU"), (2, "POM_5V_CPU")])],
}
VOLTS = 5.0


def _write(path: Path, value: str) -> None:
    """Rewrite a value in place (the meter keeps files open), fixed width so no read sees a short file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, value.encode(), 0)
    finally:
        os.close(fd)


class FakeBoard:
    """A board's INA3221 files under `root`; `set_power(rail, watts)` changes what the sensor reports."""

    def __init__(self, root: Path, board: str):
        self.root, self.files = root, {}
        for device, layout, channels in BOARDS[board]:
            base = root / "sys" / "bus" / "i2c" / "devices" / device
            base.mkdir(parents=True)
            (base / "name").write_text("ina3221\n")
            folder = base / ("hwmon/hwmon3" if layout == "hwmon" else "iio:device0")
            folder.mkdir(parents=True)
            for index, rail in channels:
                if layout == "hwmon":
                    (folder / f"in{index}_label").write_text(rail + "\n")
                    files = (folder / f"in{index}_input", folder / f"curr{index}_input", None)
                else:
                    (folder / f"rail_name_{index}").write_text(rail + "\n")
                    files = (folder / f"in_voltage{index}_input", folder / f"in_current{index}_input",
                             folder / f"in_power{index}_input")
                if rail != "NC":
                    self.files[rail] = files
            if layout == "hwmon":
                (folder / "in7_label").write_text("sum of shunt voltages\n")
                (folder / "in7_input").write_text("00042\n")
                (folder / "samples").write_text("1\n")
                (folder / "update_interval").write_text("6\n")
        for rail in self.files:
            self.set_power(rail, 1.0)

    def set_power(self, rail: str, watts: float) -> None:
        voltage, current, power = self.files[rail]
        _write(voltage, f"{VOLTS * 1000:08.0f}\n")
        _write(current, f"{watts / VOLTS * 1000:08.0f}\n")
        if power is not None:
            _write(power, f"{watts * 1000:08.0f}\n")


def powering(board: FakeBoard, trace: Callable[[float], dict[str, float]]) -> Callable[[float], None]:
    """What `sample_for` calls before each sample (stand_ins/clock.py): the board set to `trace(t)`."""

    def set_to(t: float) -> None:
        for rail, watts in trace(t).items():
            board.set_power(rail, watts)

    return set_to


def sine_trace(rails: dict[str, float], amplitude: float = 0.4, hz: float = 0.7):
    """Each rail at mean * (1 + amplitude * sin(2 pi hz t)); returns the trace and its exact integral."""

    def trace(t: float) -> dict[str, float]:
        return {rail: mean * (1 + amplitude * math.sin(2 * math.pi * hz * t)) for rail, mean in rails.items()}

    def exact(rail: str, start: float, end: float) -> float:
        mean = rails[rail]

        def antiderivative(t: float) -> float:
            return mean * (t - amplitude * math.cos(2 * math.pi * hz * t) / (2 * math.pi * hz))

        return antiderivative(end) - antiderivative(start)

    return trace, exact
