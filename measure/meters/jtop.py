"""jetson-stats (`jtop`) as a cross-check source: its per-rail instantaneous power, polled.

Never integrate jtop's `avg` field: it is not a time average. Needs jetson-stats and its service
running on a Jetson (status: the README's table).
"""

from __future__ import annotations

from pathlib import Path

from asr_engines.measure.meters.base import SampledMeter
from asr_engines.measure.meters.jetson_rails import rail_roles


class JtopUnavailable(OSError):
    """jetson-stats missing or its service not running."""


class JtopMeter(SampledMeter):
    name = "jtop"

    def __init__(self, root: Path = Path("/"), sample_hz: float = 10.0):
        """`root` is unused: jtop talks to its service."""
        try:
            from jtop import jtop
        except ImportError:
            raise JtopUnavailable("jetson-stats is not installed (pip install jetson-stats)") from None
        self._jtop = jtop(interval=1 / sample_hz)
        try:
            self._jtop.start()
        except Exception as error:  # jtop raises JtopException when its service is down
            raise JtopUnavailable(f"jtop service not reachable ({error})") from None
        rails = list(self._jtop.power["rail"])
        super().__init__(rails, sample_hz)
        self.averaging = f"jtop's instantaneous rail power, refreshed every {1000 / sample_hz:.0f} ms"
        self.total_rail, self.gpu_rail, self.gpu_rail_shares = rail_roles(self.rails)

    def read_power(self) -> dict[str, float]:
        return {rail: values["power"] / 1000 for rail, values in self._jtop.power["rail"].items()}

    def stop(self) -> None:
        super().stop()
        self._jtop.close()
