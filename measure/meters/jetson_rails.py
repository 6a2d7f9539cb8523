"""What the Jetson rail names mean: which one is the module's total and which one carries the GPU.

Shared by every Jetson source (INA3221 sysfs, tegrastats, jtop), which all see the same rail names.
"""

from __future__ import annotations

from collections.abc import Iterable

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
#: rail -> what else shares it with the GPU (the Orin Nano/NX GPU has no rail of its own).
GPU_RAILS = {
    "VDD_GPU_SOC": "SoC (memory controller, engines)",
    "VDD_CPU_GPU_CV": "CPU and CV accelerators",
    "POM_5V_GPU": "",
    "VDD_GPU": "",
}


def rail_roles(rails: Iterable[str]) -> tuple[str | None, str | None, str]:
    """(total rail or None: sum the rails, GPU rail or None, what else draws from the GPU rail)."""
    present = set(rails)
    total = next((rail for rail in TOTAL_RAILS if rail in present), None)
    gpu = next((rail for rail in GPU_RAILS if rail in present), None)
    return total, gpu, GPU_RAILS.get(gpu, "")
