"""tegrastats lines (JetPack 4 to 7) as power samples: live from `tegrastats --interval N`, or a log replayed.

JetPack 5/6: `VDD_IN 4556mW/4556mW` (current/average); JetPack 4: `POM_5V_IN 933/933` (mW, no unit);
JetPack 7: `VDD_GPU_SOC 5139mW/5139mW/5139mW`. The first number is the instantaneous one. Timestamps in
the lines have 1 s resolution, so sample times are rebuilt from the interval.

Live use needs a Jetson; the parser and the replay are tested on lines of each release.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np

from asr_engines.measure.meters.base import SampledMeter, integrate
from asr_engines.measure.meters.jetson_rails import rail_roles

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?(?:/\d+(?:mW)?)?")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "EMC_FREQ", "GR3D_FREQ", "CPU", "APE", "NVENC", "NVDEC", "NVJPG", "VIC_FREQ"}


def parse_line(line: str) -> dict[str, float]:
    """Rail powers in watts (instantaneous value) from one tegrastats line; {} if it has none."""
    return {name: int(now) / 1000 for name, now, _ in _RAIL.findall(line) if name not in _NOT_RAILS}


def replay(log: str | Path, interval_ms: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sample times (s from the first line) and rail powers (W) from a tegrastats log."""
    rows = [parse_line(line) for line in Path(log).read_text().splitlines()]
    rows = [row for row in rows if row]
    if not rows:
        raise ValueError(f"{log}: no tegrastats power readings")
    rails = list(rows[0])
    times = np.arange(len(rows)) * interval_ms / 1000
    return times, {rail: np.array([row.get(rail, np.nan) for row in rows]) for rail in rails}


def replay_energy(log: str | Path, interval_ms: float, start_s: float = 0.0, end_s: float | None = None) -> dict[str, float]:
    """Joules per rail (trapezoids) between two times of a replayed log (default: all of it)."""
    times, rails = replay(log, interval_ms)
    end_s = times[-1] if end_s is None else end_s
    return {rail: integrate(times, power, start_s, end_s) for rail, power in rails.items()}


class TegrastatsUnavailable(OSError):
    """No tegrastats binary (not a Jetson)."""


class TegrastatsMeter(SampledMeter):
    """Runs `tegrastats --interval N` and turns each line into a sample (interval >= 10 ms)."""

    name = "tegrastats"

    def __init__(self, root: Path = Path("/"), sample_hz: float = 20.0, command: str = "tegrastats"):
        """`root` is unused: tegrastats is a program."""
        executable = shutil.which(command)
        if executable is None:
            raise TegrastatsUnavailable("tegrastats not found (it ships with Jetson Linux)")
        interval_ms = max(10, int(1000 / sample_hz))
        self._process = subprocess.Popen([executable, "--interval", str(interval_ms)], stdout=subprocess.PIPE, text=True)
        first = parse_line(self._process.stdout.readline())
        if not first:
            self._process.kill()
            raise TegrastatsUnavailable("tegrastats printed no rail powers")
        self._latest = first
        self._latest_lock = threading.Lock()
        super().__init__(list(first), 1000 / interval_ms)
        self.averaging = f"tegrastats' instantaneous rail readings, one line every {interval_ms} ms"
        self.total_rail, self.gpu_rail, self.gpu_rail_shares = rail_roles(self.rails)
        self._reader = threading.Thread(target=self._follow, daemon=True)
        self._reader.start()

    def _follow(self) -> None:
        for line in self._process.stdout:
            row = parse_line(line)
            if row:
                with self._latest_lock:
                    self._latest = row

    def read_power(self) -> dict[str, float]:
        with self._latest_lock:
            return dict(self._latest)

    def stop(self) -> None:
        super().stop()
        self._process.terminate()

    def info(self) -> dict:
        return {"interval_ms": int(1000 / self.sample_hz), "rails": self.rails}
