"""NVIDIA GPUs through NVML: power polled (it refreshes about every 100 ms) and, where the GPU has one
(Volta and later), the total-energy counter, read at each window's start and end.

Jetson boards have no NVML power: use `ina3221` there.
"""

from __future__ import annotations

from pathlib import Path

from measure.meters.base import SampledMeter


class NvmlUnavailable(OSError):
    """No NVML library, no NVIDIA GPU, or no power reading on it."""


class NvmlMeter(SampledMeter):
    """One rail per GPU (`gpu0`, `gpu1`, ...); `total` is their sum."""

    name = "nvml"

    def __init__(self, root: Path = Path("/"), sample_hz: float = 20.0, nvml=None):
        """`root` is unused (NVML is a library, not files); `nvml` lets tests pass a stand-in module."""
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError:
                raise NvmlUnavailable("nvidia-ml-py is not installed") from None
        self._nvml = nvml
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
            for handle in self._handles:
                nvml.nvmlDeviceGetPowerUsage(handle)
        except nvml.NVMLError as error:
            raise NvmlUnavailable(f"NVML power unavailable ({error})") from None
        if not self._handles:
            raise NvmlUnavailable("NVML sees no GPU")
        super().__init__([f"gpu{index}" for index in range(len(self._handles))], sample_hz)
        self.gpu_rail = "gpu0"
        self._has_counter = self._counter_works()

    def _counter_works(self) -> bool:
        try:
            for handle in self._handles:
                self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except self._nvml.NVMLError:
            return False
        return True

    def read_power(self) -> dict[str, float]:
        try:
            return {rail: self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000 for rail, handle in zip(self.rails, self._handles)}
        except self._nvml.NVMLError as error:
            raise OSError(str(error)) from None

    def read_energy(self) -> dict[str, float] | None:
        if not self._has_counter:
            return None
        try:
            return {rail: self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000
                    for rail, handle in zip(self.rails, self._handles)}
        except self._nvml.NVMLError as error:
            raise OSError(str(error)) from None

    def info(self) -> dict:
        names = [self._nvml.nvmlDeviceGetName(handle) for handle in self._handles]
        return {"gpus": [name.decode() if isinstance(name, bytes) else name for name in names],
                "energy_counter": self._has_counter}
