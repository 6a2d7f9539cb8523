"""The null meter: energy unavailable, with the reason. The bench never branches on `meter is None`."""

from __future__ import annotations

import time
from pathlib import Path

from asr_engines.measure.meters.base import Measurement, Windows


class NoneMeter(Windows):
    """Answers every window with duration and `energy_j=None`, saying why."""

    name = "none"
    averaging = ""
    rails: list[str] = []
    total_rail = None
    gpu_rail = None
    gpu_rail_shares = ""
    sample_hz = None
    available = False

    def __init__(self, root: Path = Path("/"), sample_hz: float | None = None,
                 reason: str = "no power meter chosen (--meter none)"):
        self.reason = reason
        self._open: dict[str, float] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def begin_window(self, name: str) -> None:
        self._open[name] = time.monotonic()

    def end_window(self, name: str) -> Measurement:
        start, end = self._open.pop(name), time.monotonic()
        return Measurement(name, end - start, None, None, 0, None, False, note=self.reason, start_s=start, end_s=end)

    def info(self) -> dict:
        return {"reason": self.reason}
