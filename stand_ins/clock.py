"""A clock the test moves, for meter tests that must not depend on how busy the machine is.

A meter built with `clock=ManualClock()` stamps its samples with the clock's time; the test does not start the
sampler's thread but calls `meter.sample()` itself (`sample_for`), so every sample lands exactly where the test
puts it, however loaded the machine. The thread's own timing is tested through `TickSchedule` (base.py).
"""

from __future__ import annotations

from collections.abc import Callable


class ManualClock:
    """Monotonic seconds that move only when `advance` is called."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go back")
        self.now += seconds


def sample_for(meter, clock: ManualClock, seconds: float, before_each: Callable[[float], None] | None = None) -> None:
    """Move `clock` on by `seconds` one sample period at a time, sampling `meter` at each step;
    `before_each(t)` sets the sensors' values for time t first (a power trace)."""
    period = 1.0 / meter.sample_hz
    for _ in range(round(seconds / period)):
        clock.advance(period)
        if before_each is not None:
            before_each(clock())
        meter.sample()
