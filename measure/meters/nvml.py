"""NVIDIA GPUs through NVML: power polled and, where the GPU has one (Volta and later), the total-energy counter.

Which power: `nvmlDeviceGetPowerUsage` is a one-second moving average on recent GPUs (measured on an H100 with
driver 580: 90 % of a load step 1.35 s after it starts, and its trapezoids -9.5 % against the counter over a
5 s load); the field `NVML_FI_DEV_POWER_INSTANT` is not averaged (0.54 s, -0.6 %). All three move every 100 ms.
So the instant field is sampled where the driver returns it, the average otherwise, and the meter says which
(`averaging`, `info()`). Window energy comes from the counter, interpolated at the window's ends (base.py).
Where the driver gives both as fields, one `nvmlDeviceGetFieldValues` call per GPU reads the instant power and the
counter together: half the NVML calls per tick, which is what kept the sampler below its rate under a full GPU
load (docs/bench.md, "Sampling rate").

Jetson boards have no NVML power: use `ina3221` there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from asr_engines.measure.meters.base import SampledMeter

POWER_SOURCES = ("auto", "instant", "average")
_AVERAGING = {
    "instant": "NVML_FI_DEV_POWER_INSTANT: not averaged, updated every 100 ms",
    "average": "nvmlDeviceGetPowerUsage: a 1 s moving average on recent GPUs (lags a load step by about 1.3 s); "
               "this driver gave no instant field",
}


class NvmlUnavailable(OSError):
    """No NVML library, no NVIDIA GPU, or no power reading on it."""


class NvmlMeter(SampledMeter):
    """One rail per GPU (`gpu0`, `gpu1`, ...); `total` is their sum."""

    name = "nvml"

    def __init__(self, root: Path = Path("/"), sample_hz: float = 100.0, nvml=None, power_source: str = "auto",
                 clock: Callable[[], float] = time.monotonic):
        """`root` is unused (NVML is a library, not files); `nvml` lets tests pass a stand-in module;
        `power_source`: `instant`, `average`, or `auto` (instant where the driver has it)."""
        if power_source not in POWER_SOURCES:
            raise ValueError(f"power source must be one of {', '.join(POWER_SOURCES)}, not {power_source!r}")
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError:
                raise NvmlUnavailable("nvidia-ml-py is not installed: pip install 'asr-engines[nvml]'") from None
        self._nvml = nvml
        try:
            nvml.nvmlInit()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(nvml.nvmlDeviceGetCount())]
            for handle in self._handles:
                nvml.nvmlDeviceGetPowerUsage(handle)
        except nvml.NVMLError as error:
            raise NvmlUnavailable(f"NVML power unavailable ({error})") from None
        if not self._handles:
            raise NvmlUnavailable("NVML sees no GPU")
        instant = self._instant_works()
        if power_source == "instant" and not instant:
            raise NvmlUnavailable("this driver gives no NVML_FI_DEV_POWER_INSTANT")
        self.power_source = "instant" if power_source in ("auto", "instant") and instant else "average"
        self.averaging = _AVERAGING[self.power_source]
        super().__init__([f"gpu{index}" for index in range(len(self._handles))], sample_hz, clock)
        self.gpu_rail = "gpu0"
        self.counter_period_s = 0.1 if self._counter_works() else None
        self.one_call = self.power_source == "instant" and bool(self.counter_period_s) and self._one_call_works()

    def _fields(self, handle, fields: list[int]) -> list[float]:
        values = []
        for field in self._nvml.nvmlDeviceGetFieldValues(handle, fields):
            if field.nvmlReturn != 0:
                raise self._nvml.NVMLError(field.nvmlReturn)
            member = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}.get(field.valueType, "uiVal")
            values.append(float(getattr(field.value, member)))
        return values

    def _instant_milliwatts(self, handle) -> float:
        return self._fields(handle, [self._nvml.NVML_FI_DEV_POWER_INSTANT])[0]

    def _power_and_energy_fields(self) -> list[int]:
        return [self._nvml.NVML_FI_DEV_POWER_INSTANT, self._nvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION]

    def _one_call_works(self) -> bool:
        try:
            for handle in self._handles:
                self._fields(handle, self._power_and_energy_fields())
        except (self._nvml.NVMLError, AttributeError):
            return False
        return True

    def _instant_works(self) -> bool:
        try:
            for handle in self._handles:
                self._instant_milliwatts(handle)
        except (self._nvml.NVMLError, AttributeError):  # an older nvidia-ml-py has no such field
            return False
        return True

    def _counter_works(self) -> bool:
        try:
            for handle in self._handles:
                self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except self._nvml.NVMLError:
            return False
        return True

    def read_power(self) -> dict[str, float]:
        read = self._instant_milliwatts if self.power_source == "instant" else self._nvml.nvmlDeviceGetPowerUsage
        try:
            return {rail: read(handle) / 1000 for rail, handle in zip(self.rails, self._handles)}
        except self._nvml.NVMLError as error:
            raise OSError(str(error)) from None

    def read_sample(self) -> tuple[dict[str, float], dict[str, float] | None]:
        if not self.one_call:
            return super().read_sample()
        try:
            read = [self._fields(handle, self._power_and_energy_fields()) for handle in self._handles]
        except self._nvml.NVMLError as error:
            raise OSError(str(error)) from None
        return ({rail: milliwatts / 1000 for rail, (milliwatts, _) in zip(self.rails, read)},
                {rail: millijoules / 1000 for rail, (_, millijoules) in zip(self.rails, read)})

    def read_energy(self) -> dict[str, float] | None:
        if not self.counter_period_s:
            return None
        try:
            return {rail: self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000
                    for rail, handle in zip(self.rails, self._handles)}
        except self._nvml.NVMLError as error:
            raise OSError(str(error)) from None

    def info(self) -> dict:
        names = [self._nvml.nvmlDeviceGetName(handle) for handle in self._handles]
        return {"gpus": [name.decode() if isinstance(name, bytes) else name for name in names],
                "power_source": self.power_source, "energy_counter": bool(self.counter_period_s),
                "reads_per_tick": 1 if self.one_call else 1 + bool(self.counter_period_s)}
