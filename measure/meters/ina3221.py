"""INA3221 rails on NVIDIA Jetson boards, read from sysfs (what jetson-stats reads, sampled far faster).

Discovery, as jetson-stats does it: every `/sys/bus/i2c/devices/*/name` containing `ina3221`; below it a
`hwmon/hwmonN` folder (JetPack 5/6: `inN_label`, `inN_input` mV, `currN_input` mA, channels 1-3) or an
`iio:deviceN` folder (JetPack 4: `rail_name_N`, `in_voltageN_input` mV, `in_currentN_input` mA,
`in_powerN_input` mW, channels 0-2). Channels labelled `NC` and the `in7` sum channel are skipped.
Power is V x I per sample where no power file exists.

Reads a Jetson's sysfs: the tests run it on fake trees of an Orin Nano, an AGX Orin and a Nano, and
`asr-engines check-meter --meter ina3221` checks it on a board (status: the README's table).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asr_engines.measure.meters.base import SampledMeter
from asr_engines.measure.meters.jetson_rails import rail_roles


class NoSensorError(OSError):
    """No INA3221 under the sysfs root."""


@dataclass(frozen=True)
class Channel:
    """One rail: its name and the sysfs files that give its power."""

    rail: str
    voltage: Path | None  # mV
    current: Path | None  # mA
    power: Path | None  # mW, JetPack 4 only


def discover(root: Path = Path("/")) -> tuple[list[Channel], dict]:
    """All INA3221 channels under `root` (which stands in for `/`), and the averaging settings found."""
    channels, settings = [], {}
    for name_file in sorted((root / "sys" / "bus" / "i2c" / "devices").glob("*/name")):
        try:
            if "ina3221" not in name_file.read_text().strip():
                continue
        except OSError:
            continue
        device = name_file.parent
        for hwmon in sorted(device.glob("hwmon/hwmon*")):
            channels += _hwmon_channels(hwmon)
            for setting in ("samples", "update_interval"):
                if (hwmon / setting).is_file():
                    settings[f"{device.name}/{setting}"] = (hwmon / setting).read_text().strip()
        for iio in sorted(device.glob("iio:device*")):
            channels += _iio_channels(iio)
    return channels, settings


def _hwmon_channels(folder: Path) -> list[Channel]:
    channels = []
    for label in sorted(folder.glob("in[0-9]_label")):
        index = label.name[2:-6]
        rail = label.read_text().strip()
        if index == "7" or "NC" in rail:  # in7: sum of shunt voltages, not a rail
            continue
        channels.append(Channel(rail, folder / f"in{index}_input", folder / f"curr{index}_input", None))
    return channels


def _iio_channels(folder: Path) -> list[Channel]:
    channels = []
    for label in sorted(folder.glob("rail_name_[0-9]")):
        index = label.name.rsplit("_", 1)[1]
        rail = label.read_text().strip()
        if "NC" in rail:
            continue
        power = folder / f"in_power{index}_input"
        channels.append(Channel(rail, folder / f"in_voltage{index}_input", folder / f"in_current{index}_input",
                                power if power.is_file() else None))
    return channels


def averaging(settings: dict) -> str:
    """What each INA3221 averages before a read, from its `samples` (conversions averaged) and `update_interval`
    (ms between refreshes) files: "1-0040: 4 samples averaged, refreshed every 7 ms"."""
    devices = sorted({key.split("/")[0] for key in settings})
    return "; ".join(f"{device}: {settings.get(f'{device}/samples', '?')} samples averaged, refreshed every "
                     f"{settings.get(f'{device}/update_interval', '?')} ms" for device in devices) or "not reported by the driver"


class Ina3221Meter(SampledMeter):
    """Samples every INA3221 rail (default 100 Hz; the sensor refreshes about every 6.6 ms)."""

    name = "ina3221"

    def __init__(self, root: Path = Path("/"), sample_hz: float = 100.0, clock: Callable[[], float] = time.monotonic):
        channels, self.settings = discover(root)
        if not channels:
            raise NoSensorError(f"no INA3221 under {root / 'sys/bus/i2c/devices'} (not a Jetson, or no permission)")
        self.channels = channels
        super().__init__([channel.rail for channel in channels], sample_hz, clock)
        self.total_rail, self.gpu_rail, self.gpu_rail_shares = rail_roles(self.rails)
        self.averaging = averaging(self.settings)
        self._fds: dict[Path, int] = {}

    def read_power(self) -> dict[str, float]:
        power = {}
        for channel in self.channels:
            if channel.power is not None:
                power[channel.rail] = self._read(channel.power) / 1000
            else:
                power[channel.rail] = self._read(channel.voltage) * self._read(channel.current) / 1e6
        return power

    def _read(self, path: Path) -> float:
        """One sysfs value. The file stays open; pread at offset 0 makes the driver read the sensor again."""
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY)
        return float(os.pread(fd, 32, 0))

    def stop(self) -> None:
        super().stop()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def info(self) -> dict:
        return {"rails": self.rails, "total_rail": self.total_rail or "sum of rails", "gpu_rail": self.gpu_rail,
                "gpu_rail_shares": self.gpu_rail_shares, **self.settings}
