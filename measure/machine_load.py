"""How busy the machine was while something was timed: the 1-minute load average before, during and after, and the
CPU time other processes took meanwhile (all CPUs' busy time from /proc/stat minus this process's own and its
reaped children's). A speed ratio read while other processes ran is not comparable with one read on a quiet
machine: a busy machine slows a multi-threaded peer more than our engines (docs/bench.md, "Machine load").

Linux only for the CPU time (elsewhere it reads as unknown, and the window as not quiet)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: Other processes' busy cores, and the 1-minute load average before timing, above which a window is loaded.
QUIET_BELOW = 0.5


def busy_cpu_s(stat_path: str = "/proc/stat") -> float | None:
    """Seconds all CPUs have spent busy since boot (user, nice, system, irq, softirq, steal), or None off Linux."""
    try:
        with open(stat_path) as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds this process (all its threads) and its reaped children have taken."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass(frozen=True)
class MachineLoad:
    """One timed window: the load averages (this process included) and what other processes took."""

    load_before: float
    load_peak: float  # highest 1-minute load average seen at the window's ticks, this process included
    load_after: float
    other_cores: float | None  # other processes' CPU seconds / wall seconds over the window; None: unknown
    other_cores_peak: float | None  # the same for the busiest interval between two ticks
    wall_s: float
    load_before_judged: bool = True  # False where the load average before is our own earlier work (the bench's engines)

    @property
    def quiet(self) -> bool:
        return (self.other_cores is not None and self.other_cores <= QUIET_BELOW and self.other_cores_peak <= 2 * QUIET_BELOW
                and (self.load_before <= QUIET_BELOW or not self.load_before_judged))

    def describe(self) -> str:
        """One line: the figures, and whether a speed ratio read in this window is comparable."""
        others = ("unknown" if self.other_cores is None
                  else f"{self.other_cores:.2f} cores on average, {self.other_cores_peak:.2f} at most")
        verdict = "quiet: comparable" if self.quiet else f"LOADED (above {QUIET_BELOW}): not comparable"
        return (f"machine load: 1-min load average {self.load_before:.2f} before, {self.load_peak:.2f} peak "
                f"(this process included), {self.load_after:.2f} after; other processes {others} over "
                f"{self.wall_s:.0f} s -> {verdict}")

    def tag(self) -> str:
        """What a ratio line carries beside its figures: `load_before=0.31 other_cores=0.12 comparable=yes`."""
        others = "unknown" if self.other_cores is None else f"{self.other_cores:.2f}"
        return f"load_before={self.load_before:.2f} other_cores={others} comparable={'yes' if self.quiet else 'no'}"

    def as_dict(self) -> dict:
        return {"load_before": self.load_before, "load_peak": self.load_peak, "load_after": self.load_after,
                "other_cores": self.other_cores, "other_cores_peak": self.other_cores_peak, "wall_s": self.wall_s,
                "quiet": self.quiet}


@dataclass
class LoadWatch:
    """`begin()`, `tick()` between passes, `end()` -> MachineLoad. The readers are parameters so tests drive them.
    `judge_load_before`: False where the load average before the window is our own earlier work (the bench measures
    engines one after another, so it cannot fall between them); other processes' CPU time alone then decides."""

    judge_load_before: bool = True

    loadavg: Callable[[], float] = lambda: os.getloadavg()[0]
    busy: Callable[[], float | None] = busy_cpu_s
    own: Callable[[], float] = own_cpu_s
    clock: Callable[[], float] = time.monotonic
    _ticks: list[tuple[float, float | None, float, float]] = field(default_factory=list)

    def settle(self, timeout_s: float, sleep: Callable[[float], None] = time.sleep) -> float:
        """Wait up to `timeout_s` for the load average to fall to QUIET_BELOW (our own set-up, an export or a
        build, leaves it high for a minute); the load average at the end."""
        deadline = self.clock() + timeout_s
        while self.loadavg() > QUIET_BELOW and self.clock() < deadline:
            sleep(min(5.0, max(deadline - self.clock(), 0.0)))
        return self.loadavg()

    def begin(self) -> None:
        self._ticks = []
        self.tick()

    def tick(self) -> None:
        self._ticks.append((self.clock(), self.busy(), self.own(), self.loadavg()))

    def end(self) -> MachineLoad:
        self.tick()
        (start, *_), (stop, *_) = self._ticks[0], self._ticks[-1]
        wall_s = max(stop - start, 1e-9)
        others = [(later[1] - earlier[1] - (later[2] - earlier[2])) / max(later[0] - earlier[0], 1e-9)
                  for earlier, later in zip(self._ticks, self._ticks[1:])
                  if earlier[1] is not None and later[1] is not None]
        known = all(tick[1] is not None for tick in self._ticks)
        first, last = self._ticks[0], self._ticks[-1]
        return MachineLoad(
            load_before=first[3], load_peak=max(tick[3] for tick in self._ticks), load_after=last[3],
            other_cores=max((last[1] - first[1] - (last[2] - first[2])) / wall_s, 0.0) if known else None,
            other_cores_peak=max(max(others), 0.0) if known and others else None, wall_s=wall_s,
            load_before_judged=self.judge_load_before)
