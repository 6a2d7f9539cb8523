"""The device an engine is built for: what decides whether a TensorRT plan can run on a machine."""

from __future__ import annotations

import platform
import re
from pathlib import Path


def l4t_release(root: Path = Path("/")) -> str | None:
    """The Jetson Linux release (`R36.4.3`) from /etc/nv_tegra_release, or None off a Jetson."""
    try:
        first_line = (root / "etc" / "nv_tegra_release").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", first_line)
    return f"R{match.group(1)}.{match.group(2)}" if match else first_line.strip()


def cpu_model(root: Path = Path("/")) -> str:
    """The CPU's model name from /proc/cpuinfo (falls back to the architecture)."""
    try:
        for line in (root / "proc" / "cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def host_summary() -> dict:
    """Where something was built: host name, OS, CPU, Python, and the L4T release on a Jetson."""
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "l4t": l4t_release(),
    }


def gpu_identity() -> dict:
    """What decides whether a TensorRT plan built on one GPU runs on another: name, compute capability,
    multiprocessor count and total memory (every Orin module is called "Orin"; these tell an Orin Nano
    4 GB, an Orin Nano 8 GB and an Orin NX apart). Needs pycuda and a CUDA device."""
    import pycuda.autoprimaryctx  # noqa: F401  (the primary context TensorRT shares)
    import pycuda.driver as cuda

    device = cuda.Context.get_device()
    major, minor = device.compute_capability()
    return {
        "gpu": device.name(),
        "compute_capability": f"{major}.{minor}",
        "multiprocessors": device.get_attribute(cuda.device_attribute.MULTIPROCESSOR_COUNT),
        "gpu_memory_mb": device.total_memory() // 2**20,
    }
