"""tegrastats lines of each JetPack, RAPL wrap-around, NVML through a stand-in, the integrator, the null meter."""

import time
import types

import numpy as np
import pytest

from asr_engines.measure.meters import integrate
from asr_engines.measure.meters.rapl import RaplMeter, RaplUnavailable
from asr_engines.measure.meters.tegrastats import parse_line, replay, replay_energy
from stand_ins.clock import ManualClock, sample_for

JETPACK = {
    "jp4": ("RAM 1654/3964MB (lfb 77x4MB) SWAP 0/1982MB CPU [12%@1479,5%@1479,off,off] EMC_FREQ 0% GR3D_FREQ 0% "
            "PLL@26C CPU@29C PMIC@100C GPU@28C AO@34C thermal@28.5C POM_5V_IN 933/933 POM_5V_GPU 0/0 POM_5V_CPU 124/124",
            {"POM_5V_IN": 0.933, "POM_5V_GPU": 0.0, "POM_5V_CPU": 0.124}),
    "jp5": ("11-26-2026 10:00:01 RAM 2147/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [2%@729,1%@729] "
            "EMC_FREQ 0%@2133 GR3D_FREQ 26%@[306] VIC_FREQ 115 APE 200 CPU@47.5C GPU@46C "
            "VDD_IN 4556mW/4556mW VDD_CPU_GPU_CV 483mW/483mW VDD_SOC 1451mW/1451mW",
            {"VDD_IN": 4.556, "VDD_CPU_GPU_CV": 0.483, "VDD_SOC": 1.451}),
    "jp7": ("11-26-2026 10:00:01 RAM 9000/122000MB CPU [1%@972] GR3D_FREQ 0% VDD_GPU_SOC 5139mW/5139mW/5139mW "
            "VDD_CPU_CV 1200mW/1100mW/1000mW",
            {"VDD_GPU_SOC": 5.139, "VDD_CPU_CV": 1.2}),
}


@pytest.mark.parametrize("release", list(JETPACK))
def test_tegrastats_lines_of_each_jetpack(release):
    line, expected = JETPACK[release]
    assert parse_line(line) == pytest.approx(expected)


def test_tegrastats_replay_rebuilds_times_from_the_interval(tmp_path):
    log = tmp_path / "tegrastats.log"
    lines = [f"11-26-2026 10:00:0{i // 10} RAM 1/2MB VDD_IN {4000 + 100 * i}mW/4000mW VDD_SOC 1000mW/1000mW" for i in range(11)]
    log.write_text("\n".join(lines) + "\n")
    times, rails = replay(log, interval_ms=100)
    assert times[-1] == pytest.approx(1.0) and rails["VDD_IN"][0] == 4.0
    energy = replay_energy(log, interval_ms=100)
    assert energy["VDD_IN"] == pytest.approx(4.5)  # linear 4.0 -> 5.0 W over 1 s
    assert energy["VDD_SOC"] == pytest.approx(1.0)


def test_integrate_cuts_windows_inside_samples():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    power = np.array([0.0, 10.0, 20.0, 30.0])  # 10 W/s ramp
    assert integrate(times, power, 0.5, 2.5) == pytest.approx(30.0)  # mean 15 W for 2 s
    assert integrate(times, power, 1.25, 1.75) == pytest.approx(7.5)


def make_rapl(root, energy_uj, max_uj=1_000_000):
    zone = root / "sys" / "class" / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    return zone / "energy_uj"


def test_rapl_counter_wraps_around(tmp_path):
    counter = make_rapl(tmp_path, 900_000)
    now = {"t": 0.0}
    meter = RaplMeter(tmp_path, clock=lambda: now["t"])
    counter.write_text("950000\n")
    now["t"] = 1.0
    assert meter.read_power() == pytest.approx({"package-0": 0.05})
    counter.write_text("20000\n")  # wrapped at 1 000 000: 70 000 uJ more
    now["t"] = 2.0
    assert meter.read_power() == pytest.approx({"package-0": 0.07})
    assert meter.read_energy()["package-0"] == pytest.approx(0.12)


def test_rapl_without_permission_says_so(tmp_path, monkeypatch):
    make_rapl(tmp_path, 5)
    from pathlib import Path

    real = Path.read_text

    def deny(self, *args, **kwargs):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", deny)
    with pytest.raises(RaplUnavailable, match="needs root"):
        RaplMeter(tmp_path)


class StandInNvml(types.SimpleNamespace):
    """A stand-in for pynvml: one GPU idling at 100 W that draws 300 W from `load_at` to `load_until` (s after
    start), read as an H100's NVML reads it: every value moves each 100 ms; the instant field holds the power
    of the last update, nvmlDeviceGetPowerUsage a 1 s moving average, the energy counter (mJ) the exact energy
    to the last update, also as a field. `instant=False` is a driver without the instant field; `clock` what time
    it is (a test's ManualClock, or the real one); `calls` counts NVML reads."""

    class NVMLError(Exception):
        pass

    NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION = 83
    NVML_FI_DEV_POWER_INSTANT = 186

    def __init__(self, load_at=0.4, load_until=1.4, instant=True, clock=time.monotonic):
        super().__init__(clock=clock, started=clock(), load_at=load_at, load_until=load_until, instant=instant, calls=0)

    def start_load(self):
        self.load_at, self.load_until = self.clock() - self.started, np.inf

    def stop_load(self):
        self.load_until = self.clock() - self.started

    def power(self, t):
        return 300.0 if self.load_at <= t < self.load_until else 100.0

    def energy(self, t):
        loaded = max(0.0, min(t, self.load_until) - self.load_at)
        return 100.0 * t + 200.0 * loaded

    def update(self):
        self.calls += 1
        return np.floor((self.clock() - self.started) / 0.1) * 0.1  # the last 100 ms update

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetPowerUsage(self, handle):
        t = self.update()
        return int(1000 * (self.energy(t) - self.energy(max(t - 1.0, 0.0))) / min(max(t, 0.1), 1.0))

    def nvmlDeviceGetFieldValues(self, handle, fields):
        t = self.update()
        values, value = [], types.SimpleNamespace
        for field in fields:
            if field == self.NVML_FI_DEV_POWER_INSTANT and self.instant:
                values.append(value(nvmlReturn=0, valueType=1, value=value(uiVal=int(1000 * self.power(t)))))
            elif field == self.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION:
                values.append(value(nvmlReturn=0, valueType=3, value=value(ullVal=int(1000 * self.energy(t)))))
            else:
                values.append(types.SimpleNamespace(nvmlReturn=3, valueType=0, value=None))  # NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return int(1000 * self.energy(self.update()))

    def nvmlDeviceGetName(self, handle):
        return "Stand-in GPU"


def measure_load_window(nvml, power_source="auto"):
    """The 1 s load step measured as the bench measures a pass: a window from its start to its end, sampled at
    100 Hz on the stand-in's clock (a ManualClock), then measured once samples pass its end, as end_window waits."""
    from asr_engines.measure.meters.nvml import NvmlMeter

    clock = nvml.clock
    meter = NvmlMeter(nvml=nvml, sample_hz=100, power_source=power_source, clock=clock)
    meter.sample()
    sample_for(meter, clock, nvml.load_at - 0.0063)  # the window opens and closes between samples
    clock.advance(0.0063)
    start = clock()
    sample_for(meter, clock, nvml.load_until - nvml.load_at)
    end = clock()
    sample_for(meter, clock, 0.3)
    exact = nvml.energy(end - nvml.started) - nvml.energy(start - nvml.started)
    return meter, meter.measure("load", start, end), exact


def test_nvml_samples_the_instant_field_and_takes_energy_from_the_counter():
    nvml = StandInNvml(clock=ManualClock())
    meter, result, exact = measure_load_window(nvml)
    assert meter.power_source == "instant" and meter.averaging.startswith("NVML_FI_DEV_POWER_INSTANT")
    assert meter.info() == {"gpus": ["Stand-in GPU"], "power_source": "instant", "energy_counter": True, "reads_per_tick": 1}
    # the counter moves every 100 ms: interpolated at the window's ends it is within 2 % of the exact energy
    assert result.counter_energy_j["total"] == pytest.approx(exact, rel=0.02)
    assert result.total_j == pytest.approx(exact, rel=0.1)  # the instant field lags at most one update
    assert result.sample_hz == pytest.approx(100, rel=0.02)
    calls = nvml.calls
    meter.sample()
    assert nvml.calls == calls + 1  # power and counter in one NVML call per tick


def test_nvml_falls_back_to_the_average_and_says_so():
    nvml = StandInNvml(instant=False, clock=ManualClock())
    meter, result, exact = measure_load_window(nvml)
    assert meter.info()["reads_per_tick"] == 2
    assert meter.power_source == "average" and "1 s moving average" in meter.averaging
    assert result.counter_energy_j["total"] == pytest.approx(exact, rel=0.02)
    assert result.total_j < 0.8 * exact  # the averaged power lags the step: trapezoids of it fall short
    from asr_engines.measure.meters.nvml import NvmlUnavailable

    with pytest.raises(NvmlUnavailable, match="no NVML_FI_DEV_POWER_INSTANT"):
        measure_load_window(StandInNvml(instant=False, clock=ManualClock()), power_source="instant")


