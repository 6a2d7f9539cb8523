"""Power meters behind one protocol. `open_meter("auto")` picks the best source this machine has."""

from __future__ import annotations

import importlib
from pathlib import Path

from measure.meters.base import MIN_PERIODS, Measurement, Meter, SampledMeter, integrate
from measure.meters.none import NoneMeter

#: meter name -> "module:Class"; every class takes `root` and `sample_hz`. A new meter is a new line here.
REGISTRY = {
    "ina3221": "measure.meters.ina3221:Ina3221Meter",
    "nvml": "measure.meters.nvml:NvmlMeter",
    "rapl": "measure.meters.rapl:RaplMeter",
    "tegrastats": "measure.meters.tegrastats:TegrastatsMeter",
    "jtop": "measure.meters.jtop:JtopMeter",
    "none": "measure.meters.none:NoneMeter",
}
METERS = ("auto", *REGISTRY)
#: What `auto` tries, best first: the Jetson's own sensors, then a discrete GPU, then the CPU package.
AUTO_ORDER = ("ina3221", "nvml", "rapl")


def open_meter(name: str = "auto", root: Path = Path("/"), sample_hz: float | None = None) -> Meter:
    """Make a meter by name. `root` stands in for `/` for sysfs meters (tests point it at a fake tree).

    A named meter that cannot work here raises OSError with the reason; `auto` falls through to
    `NoneMeter`, whose reason lists why each source was unavailable.
    """
    if name == "auto":
        reasons = []
        for candidate in AUTO_ORDER:
            try:
                return open_meter(candidate, root, sample_hz)
            except OSError as error:
                reasons.append(f"{candidate}: {error}")
        return NoneMeter(reason="no power source found (" + "; ".join(reasons) + ")")
    if name not in REGISTRY:
        raise ValueError(f"unknown meter {name!r}; choose from {', '.join(METERS)}")
    module_name, class_name = REGISTRY[name].split(":")
    meter_class = getattr(importlib.import_module(module_name), class_name)
    return meter_class(root=root, **({"sample_hz": sample_hz} if sample_hz else {}))


__all__ = ["METERS", "MIN_PERIODS", "Measurement", "Meter", "NoneMeter", "SampledMeter", "integrate", "open_meter"]
