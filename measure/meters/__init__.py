"""Power meters behind one protocol. `open_meter("auto")` picks the best source this machine has."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from asr_engines.measure.meters.base import MIN_PERIODS, Measurement, Meter, SampledMeter, integrate
from asr_engines.measure.meters.none import NoneMeter


def _ina3221(**settings) -> Meter:
    from asr_engines.measure.meters.ina3221 import Ina3221Meter

    return Ina3221Meter(**settings)


def _nvml(**settings) -> Meter:
    from asr_engines.measure.meters.nvml import NvmlMeter

    return NvmlMeter(**settings)


def _rapl(**settings) -> Meter:
    from asr_engines.measure.meters.rapl import RaplMeter

    return RaplMeter(**settings)


def _tegrastats(**settings) -> Meter:
    from asr_engines.measure.meters.tegrastats import TegrastatsMeter

    return TegrastatsMeter(**settings)


def _jtop(**settings) -> Meter:
    from asr_engines.measure.meters.jtop import JtopMeter

    return JtopMeter(**settings)


#: meter name -> its factory (taking `root` and `sample_hz`), imported only when chosen. A new meter is a new
#: file and a new line here.
REGISTRY: dict[str, Callable[..., Meter]] = {
    "ina3221": _ina3221, "nvml": _nvml, "rapl": _rapl, "tegrastats": _tegrastats, "jtop": _jtop, "none": NoneMeter,
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
    return REGISTRY[name](root=root, **({"sample_hz": sample_hz} if sample_hz else {}))


__all__ = ["METERS", "MIN_PERIODS", "Measurement", "Meter", "NoneMeter", "SampledMeter", "integrate", "open_meter"]
