"""`asr-engines check-meter` on a stand-in NVML: the load runs in a child process, the sampler's rate is
reported, and each NVML power source is set against the energy counter. The sampler runs in real time: whether it
keeps 98 % of its rate depends on the machine, so the test checks the report, not the rate. The load is a fixed
4 s (a child process's start-up on a loaded machine would stretch it); that the real load runs in a child process
and names its device is checked apart."""

import os
import re
import time

import numpy as np
from click.testing import CliRunner
from test_meters_sources import StandInNvml

import asr_engines.commands.check_meter as check_meter
from asr_engines.measure.meters.nvml import NvmlMeter


def test_check_meter_compares_each_nvml_source_with_the_counter(monkeypatch):
    nvml = StandInNvml(load_at=np.inf, load_until=np.inf)  # 300 W while "loaded", 100 W otherwise

    def loaded(function, seconds):
        nvml.start_load()
        try:
            time.sleep(seconds)
            return "gpu"
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
    rate = next(line for line in lines if " samples arrive at >= 98 % of the rate (" in line)
    hz = float(re.search(r"\(([\d.]+) of 100 Hz under load\)", rate).group(1))
    assert rate.startswith("PASS" if hz >= 98 else "FAIL")
    assert re.search(r"^sampler: [\d.]+ Hz under load of 100 asked; late samples \d+; its own CPU [\d.]+ s \([\d.]+ % of a core\)$",
                     result.output, re.MULTILINE)
    # the load's device is named, whichever it ran on (PyTorch picks the GPU where it sees one)
    assert any(re.fullmatch(r"PASS load raises total power \(the load ran on the (cpu|gpu)\)", line) for line in lines)
    assert "PASS no read faults" in lines and "PASS the sampled source's trapezoids within 2 % of the energy counter" in lines
    assert result.exit_code == (0 if not any(line.startswith("FAIL") for line in lines) else 1), result.output


def test_the_load_runs_in_a_child_process_and_names_its_device():
    from asr_engines.processes import in_fresh_process

    assert in_fresh_process(check_meter.busy, 0.2) in ("cpu", "gpu")
    assert in_fresh_process(os.getpid) != os.getpid()
