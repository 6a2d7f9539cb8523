"""Memory: the process's peak RSS, the system's used memory, and GPU memory where NVML has it.

On a Jetson the GPU shares system RAM, so system used memory (MemTotal - MemAvailable, minus what was
used at idle) is the figure that decides whether a model fits; RSS alone misses the GPU's share.
"""

from __future__ import annotations

import resource
import sys
import threading
from dataclasses import dataclass
from pathlib import Path


def system_used_mb(root: Path = Path("/")) -> float:
    """MemTotal - MemAvailable from /proc/meminfo, in MB (MiB)."""
    fields = {}
    for line in (root / "proc" / "meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = int(value.split()[0])
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024


def rss_mb() -> float:
    """The current resident set size of this process in MB, from /proc/self/statm."""
    import os

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def max_rss_mb() -> float:
    """The kernel's high-water mark of this process's RSS, in MB.

    VmHWM from /proc/self/status, not ru_maxrss: Linux carries ru_maxrss across exec, so a process spawned
    from a large parent would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def gpu_used_mb() -> float | None:
    """Memory used on GPU 0 according to NVML, in MB; None where NVML has no answer (Jetson, no GPU)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).used / 2**20
    except Exception:  # pynvml missing, no driver, or no device: all mean "unavailable"
        return None


@dataclass
class MemoryPeaks:
    """Peaks seen while the watcher ran, in MB. `system_mb` is above the idle figure given at start."""

    rss_mb: float = 0.0
    system_mb: float = 0.0
    gpu_mb: float | None = None


class MemoryWatcher:
    """Samples RSS, system and GPU memory in a thread (default 20 Hz) to catch short peaks."""

    def __init__(self, idle_system_mb: float, sample_hz: float = 20.0):
        self.idle_system_mb = idle_system_mb
        self.peaks = MemoryPeaks()
        self._period = 1.0 / sample_hz
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-watcher", daemon=True)

    def __enter__(self) -> MemoryWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.peaks.rss_mb = max(self.peaks.rss_mb, max_rss_mb())

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self._sample()

    def _sample(self) -> None:
        self.peaks.rss_mb = max(self.peaks.rss_mb, rss_mb())
        self.peaks.system_mb = max(self.peaks.system_mb, system_used_mb() - self.idle_system_mb)
        gpu = gpu_used_mb()
        if gpu is not None:
            self.peaks.gpu_mb = max(self.peaks.gpu_mb or 0.0, gpu)
