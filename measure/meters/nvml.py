"""NVIDIA GPUs through NVML: power polled and, where the GPU has one (Volta and later), the total-energy counter.

Which power: `nvmlDeviceGetPowerUsage` is a one-second moving average on recent GPUs (measured on an H100 with
driver 580: 90 % of a load step 1.35 s after it starts, and its trapezoids -9.5 % against the counter over a
5 s load); the field `NVML_FI_DEV_POWER_INSTANT` is not averaged (0.54 s, -0.6 %). All three move every 100 ms.
So the instant field is sampled where the driver returns it, the average otherwise, and the meter says which
(`averaging`, `info()`). Window energy comes from the counter, interpolated at the window's ends (base.py).

Jetson boards have no NVML power: use `ina3221` there.
"""

from __future__ import annotations

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

    def __init__(self, root: Path = Path("/"), sample_hz: float = 100.0, nvml=None, power_source: str = "auto"):
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
        super().__init__([f"gpu{index}" for index in range(len(self._handles))], sample_hz)
        self.gpu_rail = "gpu0"
        self.counter_period_s = 0.1 if self._counter_works() else None

    def _instant_milliwatts(self, handle) -> float:
        (field,) = self._nvml.nvmlDeviceGetFieldValues(handle, [self._nvml.NVML_FI_DEV_POWER_INSTANT])
        if field.nvmlReturn != 0:
            raise self._nvml.NVMLError(field.nvmlReturn)
        member = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal"}.get(field.valueType, "uiVal")
        return float(getattr(field.value, member))

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
                "power_source": self.power_source, "energy_counter": bool(self.counter_period_s)}
