"""`asr-engines check-meter` on a stand-in NVML: the load runs in a child process, the sampler keeps its
rate, and each NVML power source is set against the energy counter."""

import re

import numpy as np
from click.testing import CliRunner
from test_meters_sources import StandInNvml

import asr_engines.commands.check_meter as check_meter
from asr_engines.measure.meters.nvml import NvmlMeter


def test_check_meter_compares_each_nvml_source_with_the_counter(monkeypatch):
    nvml = StandInNvml(load_at=np.inf, load_until=np.inf)  # 300 W while the child process loads, 100 W otherwise
    run_in_child = check_meter.in_fresh_process

    def loaded(function, *arguments):
        nvml.start_load()
        try:
            return run_in_child(function, *arguments)
        finally:
            nvml.stop_load()

    monkeypatch.setattr(check_meter, "in_fresh_process", loaded)
    monkeypatch.setattr(check_meter, "open_meter", lambda name, root, hz: NvmlMeter(nvml=nvml, power_source="instant"))
    monkeypatch.setattr(check_meter, "other_sources", lambda name, root, hz: {"average": NvmlMeter(nvml=nvml, power_source="average")})
    result = CliRunner().invoke(check_meter.command, ["--meter", "nvml", "--load-s", "4"])
    lines = result.output.splitlines()
    assert "sensor averaging: NVML_FI_DEV_POWER_INSTANT" in result.output
    instant = next(line for line in lines if line.startswith("instant: trapezoids"))
    average = next(line for line in lines if line.startswith("average: trapezoids"))
    percent = {line.split(":")[0]: float(re.search(r"([+-][\d.]+) %$", line).group(1)) for line in (instant, average)}
    assert abs(percent["instant"]) < 2 and percent["average"] < -4  # the 1 s average lags the step by about half a second
    assert any(line.startswith("PASS samples arrive at >= 90 % of the rate") for line in lines)  # the load ran elsewhere
    assert "PASS cpu load raises total power" in lines and "PASS the sampled source's trapezoids within 2 % of the energy counter" in lines
    assert result.exit_code == 0, result.output
