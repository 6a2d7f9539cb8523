"""The machine's load around timed passes: the CPU time other processes took (from /proc/stat, less our own), the
load averages, waiting for a quiet machine, and the verdict a ratio line carries. Driven by stand-in readers."""

from __future__ import annotations

import pytest

from asr_engines.measure.machine_load import QUIET_BELOW, LoadWatch, busy_cpu_s
from stand_ins.clock import ManualClock


def test_busy_time_is_read_from_proc_stat(tmp_path):
    import os

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 20 30 5000 70 4 6 10 0 0\ncpu0 50 10 15 2500 35 2 3 5 0 0\n")
    assert busy_cpu_s(str(stat)) == pytest.approx((100 + 20 + 30 + 4 + 6 + 10) / os.sysconf("SC_CLK_TCK"))
    assert busy_cpu_s(str(tmp_path / "missing")) is None
    assert busy_cpu_s() is None or busy_cpu_s() > 0  # the real one, where there is one


class Machine:
    """All CPUs' busy seconds and ours, advanced by hand with the clock."""

    def __init__(self, clock: ManualClock, load: float = 0.2):
        self.clock, self.busy, self.own, self.load = clock, 1000.0, 10.0, load

    def run(self, seconds: float, ours: float, others: float) -> None:
        """`seconds` pass while we keep `ours` cores busy and other processes `others`."""
        self.clock.advance(seconds)
        self.own += ours * seconds
        self.busy += (ours + others) * seconds

    def watch(self) -> LoadWatch:
        return LoadWatch(loadavg=lambda: self.load, busy=lambda: self.busy, own=lambda: self.own, clock=self.clock)


def test_our_own_threads_are_not_counted_as_load():
    machine = Machine(ManualClock())
    watch = machine.watch()
    watch.begin()
    for _ in range(3):
        machine.run(10, ours=2.0, others=0.1)
        watch.tick()
    machine.load = 2.1  # our two threads lift the load average: that alone is not a loaded machine
    load = watch.end()
    assert load.other_cores == pytest.approx(0.1) and load.other_cores_peak == pytest.approx(0.1)
    assert load.quiet and load.wall_s == pytest.approx(30) and (load.load_before, load.load_after) == (0.2, 2.1)
    assert load.tag() == "load_before=0.20 other_cores=0.10 comparable=yes"
    assert "quiet: comparable" in load.describe()


def test_another_process_during_one_pass_marks_the_window_loaded():
    machine = Machine(ManualClock())
    watch = machine.watch()
    watch.begin()
    machine.run(10, ours=2.0, others=0.0)
    watch.tick()
    machine.run(10, ours=1.0, others=1.5)  # a burst: under half a core over the window, 1.5 in that pass
    watch.tick()
    machine.run(20, ours=2.0, others=0.0)
    load = watch.end()
    assert load.other_cores == pytest.approx(15 / 40) and load.other_cores_peak == pytest.approx(1.5)
    assert not load.quiet and "LOADED" in load.describe() and load.tag().endswith("comparable=no")


def test_a_machine_busy_before_the_passes_is_not_quiet():
    machine = Machine(ManualClock(), load=QUIET_BELOW + 0.8)
    watch = machine.watch()
    watch.begin()
    machine.run(10, ours=2.0, others=0.0)
    assert not watch.end().quiet


def test_the_bench_judges_its_engines_by_other_processes_alone():
    """The bench measures engines one after another: the load average before one is the last one's work."""
    machine = Machine(ManualClock(), load=QUIET_BELOW + 0.8)
    watch = machine.watch()
    watch.judge_load_before = False
    watch.begin()
    machine.run(10, ours=2.0, others=0.0)
    assert watch.end().quiet
    watch.begin()
    machine.run(10, ours=2.0, others=0.9)
    assert not watch.end().quiet


def test_without_proc_stat_the_window_is_unknown_and_not_comparable():
    clock = ManualClock()
    watch = LoadWatch(loadavg=lambda: 0.0, busy=lambda: None, own=lambda: 0.0, clock=clock)
    watch.begin()
    clock.advance(5)
    load = watch.end()
    assert load.other_cores is None and not load.quiet and "unknown" in load.describe()


def test_settle_waits_for_the_load_average_to_fall_and_gives_up_at_its_timeout():
    clock = ManualClock(start=0.0)
    loads = iter([1.5, 1.0, 0.4])
    current = [2.0]

    def loadavg() -> float:
        return current[0]

    def sleep(seconds: float) -> None:
        clock.advance(seconds)
        current[0] = next(loads)

    watch = LoadWatch(loadavg=loadavg, busy=lambda: 0.0, own=lambda: 0.0, clock=clock)
    assert watch.settle(120, sleep=sleep) == 0.4 and clock() == pytest.approx(15)  # three 5 s naps
    current[0] = 3.0
    assert watch.settle(12, sleep=lambda seconds: clock.advance(seconds)) == 3.0 and clock() == pytest.approx(27)  # 5 + 5 + 2 s
