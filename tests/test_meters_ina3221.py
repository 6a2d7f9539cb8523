"""INA3221 meter on fake Orin Nano, AGX Orin and Nano trees, against a known power trace. Samples are taken at
times a test clock sets (stand_ins/clock.py), so a busy machine cannot move them; one test runs the real thread."""

import errno
import sys
import time

import pytest

from asr_engines.measure.meters import open_meter
from asr_engines.measure.meters.base import TickSchedule
from asr_engines.measure.meters.ina3221 import Ina3221Meter, NoSensorError
from stand_ins.clock import ManualClock, sample_for
from stand_ins.sysfs import FakeBoard, powering, sine_trace

RAILS = {
    "orin-nano": {"VDD_IN": 6.0, "VDD_CPU_GPU_CV": 2.5, "VDD_SOC": 1.5},
    "agx-orin": {"VDD_GPU_SOC": 9.0, "VDD_CPU_CV": 3.0, "VIN_SYS_5V0": 2.0, "VDDQ_VDD2_1V8AO": 1.0},
    "nano": {"POM_5V_IN": 4.0, "POM_5V_GPU": 1.2, "POM_5V_CPU": 1.0},
}
EXPECTED = {  # total rail, gpu rail
    "orin-nano": ("VDD_IN", "VDD_CPU_GPU_CV"),
    "agx-orin": (None, "VDD_GPU_SOC"),
    "nano": ("POM_5V_IN", "POM_5V_GPU"),
}


@pytest.mark.parametrize("board", list(RAILS))
def test_discovery_names_rails_total_and_gpu(tmp_path, board):
    FakeBoard(tmp_path, board)
    meter = Ina3221Meter(tmp_path)
    assert sorted(meter.rails) == sorted(RAILS[board])  # NC channels and the in7 sum are skipped
    assert (meter.total_rail, meter.gpu_rail) == EXPECTED[board]
    if board == "orin-nano":
        assert "CPU" in meter.gpu_rail_shares
        assert meter.info()["1-0040/update_interval"] == "6"


@pytest.mark.parametrize("board", list(RAILS))
def test_window_energy_matches_the_exact_integral(tmp_path, board):
    trace, exact = sine_trace(RAILS[board])
    clock = ManualClock()
    set_power = powering(FakeBoard(tmp_path, board), trace)
    set_power(clock())
    meter = Ina3221Meter(tmp_path, sample_hz=100, clock=clock)
    meter.sample()
    clock.advance(0.0037)  # the windows open between samples: their starts are interpolated
    with meter.window("outer") as outer:
        with meter.window("first") as first:
            sample_for(meter, clock, 0.6, set_power)
        with meter.window("second") as second:
            sample_for(meter, clock, 0.6, set_power)
    result = outer.measurement
    for window in (outer, first, second):  # nested and consecutive windows over one sampler, each cut exactly
        for rail in RAILS[board]:
            span = (window.measurement.start_s, window.measurement.end_s)
            assert window.measurement.energy_j[rail] == pytest.approx(exact(rail, *span), rel=0.001)
    total = sum(result.energy_j[rail] for rail in RAILS[board]) if EXPECTED[board][0] is None else result.energy_j[EXPECTED[board][0]]
    assert result.energy_j["total"] == pytest.approx(total)
    assert result.reliable and result.faults == 0 and result.samples == 120
    assert result.sample_hz == pytest.approx(100)


def test_read_error_mid_window_is_counted_not_raised(tmp_path):
    trace, exact = sine_trace(RAILS["orin-nano"])
    clock = ManualClock()
    set_power = powering(FakeBoard(tmp_path, "orin-nano"), trace)
    set_power(clock())
    meter = Ina3221Meter(tmp_path, sample_hz=100, clock=clock)
    real_read, calls = meter.read_power, {"n": 0}

    def flaky():
        calls["n"] += 1
        if 20 <= calls["n"] < 30:
            raise OSError(errno.EIO, "Input/output error")
        return real_read()

    meter.read_power = flaky
    meter.sample()
    with meter.window("flaky") as window:
        sample_for(meter, clock, 1.0, set_power)
    result = window.measurement
    assert result.faults == 10 and "10 sensor reads failed" in result.note and "Input/output error" in result.note
    # The 100 ms gap is bridged linearly: the total stays within 2 % on this smooth trace.
    assert result.energy_j["VDD_IN"] == pytest.approx(exact("VDD_IN", result.start_s, result.end_s), rel=0.02)


def test_short_window_is_flagged_unreliable(tmp_path):
    FakeBoard(tmp_path, "orin-nano")
    clock = ManualClock()
    meter = Ina3221Meter(tmp_path, sample_hz=100, clock=clock)
    meter.sample()
    with meter.window("blink") as window:
        sample_for(meter, clock, 0.03)
    assert not window.measurement.reliable and "< 10 sample periods" in window.measurement.note


def test_tick_schedule_keeps_the_rate_and_counts_what_it_skips():
    schedule = TickSchedule(period=0.01, start=0.0)
    assert schedule.wait(0.0) == pytest.approx(0.01)
    assert schedule.taken(0.0105) == 0 and schedule.wait(0.0105) == pytest.approx(0.0095)  # overshoot does not drift
    assert schedule.taken(0.035) == 0 and schedule.wait(0.035) == 0  # one tick behind: taken at once
    assert schedule.taken(0.0355) == 0 and schedule.wait(0.0355) == pytest.approx(0.0045)  # caught up
    assert schedule.taken(0.1003) == 5 and schedule.wait(0.1003) == 0  # a stall: the missed ticks skipped, counted
    assert schedule.taken(0.101) == 0 and schedule.wait(0.101) == pytest.approx(0.009)  # back on the grid


def test_the_sampler_thread_samples_until_stopped(tmp_path):
    FakeBoard(tmp_path, "orin-nano")
    meter = Ina3221Meter(tmp_path, sample_hz=100)
    meter.start()
    deadline = time.monotonic() + 30
    while len(meter._trace.times) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    meter.stop()
    count = len(meter._trace.times)
    time.sleep(0.05)
    assert count >= 5 and len(meter._trace.times) == count and meter.sampler_cpu_s > 0


def test_missing_sysfs_is_a_clear_error_and_auto_falls_back(tmp_path, monkeypatch):
    with pytest.raises(NoSensorError, match="no INA3221"):
        Ina3221Meter(tmp_path)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no NVML either: auto must end at the null meter
    meter = open_meter("auto", tmp_path)
    assert meter.name == "none" and not meter.available
    assert "ina3221: no INA3221" in meter.reason and "nvml: nvidia-ml-py is not installed" in meter.reason
    assert "rapl: no RAPL zones" in meter.reason


def test_auto_picks_ina3221_on_a_jetson(tmp_path):
    FakeBoard(tmp_path, "orin-nano")
    assert open_meter("auto", tmp_path).name == "ina3221"
