"""Intel/AMD CPU package energy through Linux powercap (RAPL): `/sys/class/powercap/intel-rapl:*/energy_uj`.

The counters wrap at `max_energy_range_uj`; each read is unwrapped against the previous one, so the
sampler (100 Hz by default, far faster than any wrap) keeps a monotonic total. Reading needs root on
kernels since 5.10 (CVE-2020-8694): the error says so.
"""

from __future__ import annotations

import threading
from pathlib import Path

from asr_engines.measure.meters.base import SampledMeter


class RaplUnavailable(OSError):
    """No readable RAPL zone."""


class RaplMeter(SampledMeter):
    """One rail per top-level RAPL zone (`package-0`, `psys`, ...); power from counter differences."""

    name = "rapl"
    averaging = "energy counter (updated about every 1 ms); power is its difference over each sample period"
    counter_period_s = 0.001

    def __init__(self, root: Path = Path("/"), sample_hz: float = 100.0, clock=None):
        zones = sorted((root / "sys" / "class" / "powercap").glob("intel-rapl:[0-9]*"))
        zones = [zone for zone in zones if zone.name.count(":") == 1]  # top level; subzones are inside packages
        if not zones:
            raise RaplUnavailable(f"no RAPL zones under {root / 'sys/class/powercap'}")
        self._files, self._ranges, rails = [], [], []
        for zone in zones:
            try:
                self._ranges.append(int((zone / "max_energy_range_uj").read_text()))
                rails.append((zone / "name").read_text().strip())
                int((zone / "energy_uj").read_text())
            except PermissionError:
                raise RaplUnavailable(f"{zone / 'energy_uj'}: permission denied (RAPL needs root since Linux 5.10)") from None
            self._files.append(zone / "energy_uj")
        super().__init__(rails, sample_hz, **({"clock": clock} if clock else {}))
        self._counter_lock = threading.Lock()
        self._raw: list[int] | None = None
        self._total_uj = [0] * len(rails)
        self._previous = (self._clock(), list(self.read_energy().values()))

    def read_energy(self) -> dict[str, float]:
        """Unwrapped energy since the meter was made, in joules per zone."""
        with self._counter_lock:
            raw = [int(path.read_text()) for path in self._files]
            if self._raw is not None:
                for index, (before, now) in enumerate(zip(self._raw, raw)):
                    self._total_uj[index] += now - before if now >= before else now + self._ranges[index] - before
            self._raw = raw
            return {rail: total / 1e6 for rail, total in zip(self.rails, self._total_uj)}

    def read_power(self) -> dict[str, float]:
        now = self._clock()
        energy = self.read_energy()
        previous, self._previous = self._previous, (now, list(energy.values()))
        if now <= previous[0]:
            raise ValueError("two RAPL reads at the same instant")
        return {rail: (joules - before) / (now - previous[0])
                for rail, joules, before in zip(self.rails, energy.values(), previous[1])}

    def info(self) -> dict:
        return {"zones": self.rails, "max_energy_range_uj": self._ranges}
