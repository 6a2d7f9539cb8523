"""The meter protocol and the sampler every power source shares.

A meter samples per-rail power (W) in a background thread with monotonic timestamps. Windows
(`with meter.window("utt-7") as w: ...`, or begin_window/end_window) may be consecutive or nested; each
integrates the samples with the trapezoid rule, cut exactly at its start and end by linear interpolation.
Where the hardware keeps an energy counter (NVML, RAPL) the sampler reads it too, and the window's counter
energy is the counter interpolated at the window's two ends between the instants it updated (NVML's moves
every 100 ms: read once at each end it would be stale by up to that much); both figures are reported.
Read errors and late samples are counted and reported, never raised. The sampler's own CPU time is kept
(`sampler_cpu_s`), so its cost can be stated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

#: Windows shorter than this many sample periods are flagged unreliable (MLPerf-style rule of thumb).
MIN_PERIODS = 10
#: A sampler this many periods or less behind its schedule (a wait for the GIL, a slow read) takes the missed tick
#: at once; further behind (the process was descheduled) it skips the missed ticks and counts them late.
CATCH_UP_PERIODS = 2


@dataclass(frozen=True)
class Measurement:
    """One window. Energies in joules, powers in watts, per rail plus `total`; None when unavailable."""

    name: str
    duration_s: float
    energy_j: dict[str, float] | None
    mean_w: dict[str, float] | None
    samples: int
    sample_hz: float | None
    reliable: bool
    note: str = ""
    counter_energy_j: dict[str, float] | None = None
    faults: int = 0  # failed sensor reads inside the window (the notes say which and how many ticks were late)
    start_s: float = 0.0  # monotonic clock at the window's start and end
    end_s: float = 0.0

    @property
    def total_j(self) -> float | None:
        return None if self.energy_j is None else self.energy_j["total"]


class Meter(Protocol):
    """What the bench needs from any power source."""

    name: str
    rails: list[str]
    averaging: str  # what the sensor itself averages over before it is read ("" when nothing is known)
    total_rail: str | None  # the rail that is the whole module's input; None: `total` is the sum of rails
    gpu_rail: str | None  # the rail that carries the GPU
    gpu_rail_shares: str  # what else draws from gpu_rail ("" when nothing)
    sample_hz: float | None
    available: bool
    reason: str  # why unavailable, or ""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def begin_window(self, name: str) -> None: ...

    def end_window(self, name: str) -> Measurement: ...

    def window(self, name: str): ...

    def info(self) -> dict:
        """Settings worth recording with every run (sensor averaging, update interval, device)."""
        ...


@dataclass
class WindowHandle:
    """What `window()` yields; `measurement` is set when the block exits."""

    name: str
    measurement: Measurement | None = None


@dataclass
class _Trace:
    times: list[float] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    fault_times: list[float] = field(default_factory=list)
    late_times: list[float] = field(default_factory=list)  # one entry per tick skipped
    counter_times: list[float] = field(default_factory=list)
    counter_values: list[list[float]] = field(default_factory=list)  # joules per rail, from the hardware counter


class Windows:
    """`window(name)` as a context manager over a meter's begin_window/end_window (every meter has it)."""

    @contextmanager
    def window(self, name: str) -> Iterator[WindowHandle]:
        handle = WindowHandle(name)
        self.begin_window(name)
        try:
            yield handle
        finally:
            handle.measurement = self.end_window(name)


class TickSchedule:
    """When a sampler's ticks are due: at start + k * period, so neither sleep's overshoot nor the read's cost
    drifts the rate (docs/bench.md, "Sampling rate")."""

    def __init__(self, period: float, start: float):
        self.period = period
        self.due = start + period

    def wait(self, now: float) -> float:
        """Seconds to sleep before the next tick (0 when it is due or overdue)."""
        return max(0.0, self.due - now)

    def taken(self, now: float) -> int:
        """A tick was taken and finished at `now`: schedule the next. Returns how many ticks were skipped."""
        self.due += self.period
        behind = now - self.due
        if behind < CATCH_UP_PERIODS * self.period:
            return 0
        skipped = int(behind / self.period)
        self.due += skipped * self.period
        return skipped


class SampledMeter(Windows):
    """Base for meters that poll power: subclasses set `rails` and implement `read_power()`.

    Subclasses with a hardware energy counter also implement `read_energy()` (J per rail, monotonic), and may
    override `read_sample()` where one call reads both. `clock` is what every timestamp comes from: tests pass
    one they advance themselves and call `sample()` instead of starting the thread (stand_ins/clock.py).
    """

    name = "sampled"
    averaging = ""
    counter_period_s: float | None = None  # how often the hardware energy counter moves; None: no counter
    total_rail: str | None = None
    gpu_rail: str | None = None
    gpu_rail_shares = ""
    available = True
    reason = ""

    def __init__(self, rails: list[str], sample_hz: float = 100.0, clock: Callable[[], float] = time.monotonic):
        self.rails = list(rails)
        self.sample_hz = sample_hz
        self._clock = clock
        self._trace = _Trace()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open: dict[str, tuple[float, dict[str, float] | None]] = {}
        self.last_error = ""
        self.sampler_cpu_s = 0.0

    # -- what subclasses provide ------------------------------------------------------------
    def read_power(self) -> dict[str, float]:
        """Instantaneous power per rail in watts. May raise OSError: counted as a fault."""
        raise NotImplementedError

    def read_energy(self) -> dict[str, float] | None:
        """Hardware energy counters in joules per rail, or None where the source has none."""
        return None

    def info(self) -> dict:
        return {}

    # -- sampling ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        schedule = TickSchedule(1.0 / self.sample_hz, self._clock())
        cpu_at_start = time.thread_time()
        while True:
            time.sleep(schedule.wait(self._clock()))  # a bare sleep: an Event's timed wait costs more per tick
            if self._stop.is_set():
                break
            self.sample()
            now = self._clock()
            skipped = schedule.taken(now)
            if skipped:
                with self._lock:
                    self._trace.late_times += [now] * skipped
            self.sampler_cpu_s = time.thread_time() - cpu_at_start

    def read_sample(self) -> tuple[dict[str, float], dict[str, float] | None]:
        """Power per rail (W) and, where there is one, the energy counter (J per rail) at one instant."""
        return self.read_power(), self._counters() if self.counter_period_s else None

    def sample(self) -> None:
        """Read the sensors once, at the clock's present time (the thread calls this every tick)."""
        try:
            power, counters = self.read_sample()
            row = [float(power[rail]) for rail in self.rails]
        except (OSError, ValueError, KeyError) as error:
            with self._lock:
                self._trace.fault_times.append(self._clock())
            self.last_error = f"{type(error).__name__}: {error}"
            return
        stamp = self._clock()
        with self._lock:
            self._trace.times.append(stamp)
            self._trace.values.append(row)
            if counters is not None:
                self._trace.counter_times.append(stamp)
                self._trace.counter_values.append([counters[rail] for rail in self.rails])

    # -- windows ----------------------------------------------------------------------------
    def begin_window(self, name: str) -> None:
        if name in self._open:
            raise ValueError(f"window {name!r} is already open")
        self._open[name] = (self._clock(), self._counters())

    def end_window(self, name: str) -> Measurement:
        start, counters_at_start = self._open.pop(name)
        end = self._clock()
        counters_at_end = self._counters()
        self._wait_for_sample_after(end)
        self._wait_for_counter_update_after(end)
        return self.measure(name, start, end, counters_at_start, counters_at_end)

    def _counters(self) -> dict[str, float] | None:
        try:
            return self.read_energy()
        except OSError:
            return None

    def _wait_for_sample_after(self, end: float) -> None:
        """Let the sampler pass `end`, so the window's end is interpolated, not extrapolated."""
        if self._thread is None:
            return
        deadline = self._clock() + 3.0 / self.sample_hz
        while self._clock() < deadline:
            with self._lock:
                if self._trace.times and self._trace.times[-1] >= end:
                    return
            time.sleep(0.25 / self.sample_hz)

    def _wait_for_counter_update_after(self, end: float) -> None:
        """Let the energy counter move once after `end`, so its value at `end` is interpolated between updates."""
        if self._thread is None or not self.counter_period_s:
            return
        deadline = self._clock() + 3 * self.counter_period_s
        while self._clock() < deadline:
            with self._lock:
                if _last_update(self._trace) >= end:
                    return
            time.sleep(0.25 / self.sample_hz)

    def measure(self, name: str, start: float, end: float, counters_at_start=None, counters_at_end=None) -> Measurement:
        """Integrate the trace over [start, end] (trapezoids, ends interpolated); the counter's energy from its
        sampled updates where they cover the window, else from the reads at the window's ends."""
        with self._lock:
            times = np.asarray(self._trace.times)
            values = np.asarray(self._trace.values, dtype=np.float64).reshape(len(times), len(self.rails))
            faults = sum(start <= stamp <= end for stamp in self._trace.fault_times)
            late = sum(start <= stamp <= end for stamp in self._trace.late_times)
            counter_times = np.asarray(self._trace.counter_times)
            counter_values = np.asarray(self._trace.counter_values, dtype=np.float64).reshape(len(counter_times), len(self.rails))
        duration = end - start
        period = 1.0 / self.sample_hz
        counter_energy = (_interpolated_counter(counter_times, counter_values, start, end, self.rails)
                          or _counter_difference(counters_at_start, counters_at_end, self.rails))
        inside = int(np.count_nonzero((times >= start) & (times <= end)))
        notes = []
        if faults:
            notes.append(f"{faults} sensor reads failed ({self.last_error})")
        if late:
            notes.append(f"sampler fell behind: {late} samples skipped")
        if len(times) < 2 or times[0] > start or times[-1] < end:
            notes.append("samples do not cover the window")
            energy = mean = None
        else:
            energy = {rail: integrate(times, values[:, index], start, end) for index, rail in enumerate(self.rails)}
            energy["total"] = energy[self.total_rail] if self.total_rail else sum(energy.values())
            mean = {rail: value / duration for rail, value in energy.items()} if duration > 0 else None
        reliable = energy is not None and duration >= MIN_PERIODS * period
        if energy is not None and not reliable:
            notes.append(f"window {duration * 1000:.0f} ms < {MIN_PERIODS} sample periods")
        return Measurement(
            name=name, duration_s=duration, energy_j=energy, mean_w=mean, samples=inside,
            sample_hz=inside / duration if duration > 0 else None, reliable=reliable,
            note="; ".join(notes), counter_energy_j=counter_energy, faults=faults, start_s=start, end_s=end,
        )

    @property
    def late_samples(self) -> int:
        """Ticks skipped because the sampler fell behind."""
        return len(self._trace.late_times)


def integrate(times: np.ndarray, power: np.ndarray, start: float, end: float) -> float:
    """Trapezoid integral of power (W) over [start, end] s in joules, with both ends linearly interpolated."""
    if end <= start:
        return 0.0
    inner = (times > start) & (times < end)
    cut_times = np.concatenate(([start], times[inner], [end]))
    cut_power = np.concatenate(([np.interp(start, times, power)], power[inner], [np.interp(end, times, power)]))
    return float(np.sum((cut_power[1:] + cut_power[:-1]) * np.diff(cut_times)) / 2)


def _updates(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The samples at which a counter moved (the first sample of each new value): when it updated."""
    moved = np.concatenate(([True], np.any(np.diff(values, axis=0) != 0, axis=1)))
    return times[moved], values[moved]


def _last_update(trace: _Trace) -> float:
    if len(trace.counter_times) < 2:
        return -np.inf
    times, _ = _updates(np.asarray(trace.counter_times), np.asarray(trace.counter_values))
    return float(times[-1]) if len(times) > 1 else -np.inf


def _interpolated_counter(times: np.ndarray, values: np.ndarray, start: float, end: float,
                          rails: list[str]) -> dict[str, float] | None:
    """Counter energy over [start, end], the counter interpolated between its updates; None unless updates
    bracket both ends (the first sample is only when sampling began, not an update)."""
    if len(times) < 2:
        return None
    update_times, update_values = _updates(times, values)
    if len(update_times) < 3 or update_times[1] > start or update_times[-1] < end:
        return None
    energy = {rail: float(np.interp(end, update_times, update_values[:, index]) - np.interp(start, update_times, update_values[:, index]))
              for index, rail in enumerate(rails)}
    energy["total"] = sum(energy.values())
    return energy


def _counter_difference(before: dict | None, after: dict | None, rails: list[str]) -> dict[str, float] | None:
    if not before or not after:
        return None
    difference = {rail: after[rail] - before[rail] for rail in before if rail in after}
    difference["total"] = sum(difference.values())
    return difference
