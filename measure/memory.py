"""Memory: this process's peak RSS and GPU memory, and the system's used memory beside them.

What an engine needs is its own process's: peak RSS, plus its GPU memory where that can be read (NVML's
per-process figure on a discrete GPU; on a Jetson, whose GPU allocations live in nvmap and not in RSS, nvmap's
per-process figure in debugfs, readable by root). The system-wide delta (MemTotal - MemAvailable above idle)
counts every other process too: it is kept as a separate, labelled figure, judged for contamination, and
stands in for the GPU's share only where that cannot be read and the figure is clean.
"""

from __future__ import annotations

import os
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


#: System-wide used memory that moves this much without this process is other processes at work (MB).
CONTAMINATION_MB = 128.0
NVMAP_CLIENTS = Path("sys/kernel/debug/nvmap/iovmm/clients")


def nvmap_process_mb(pid: int, root: Path = Path("/")) -> float | None:
    """A process's GPU memory on a Jetson: its lines in nvmap's clients table (`CLIENT PROCESS PID SIZE`, sizes
    like `123456K`), in MB. None where debugfs cannot be read (not root, not a Jetson)."""
    try:
        lines = (root / NVMAP_CLIENTS).read_text().splitlines()
    except OSError:
        return None
    total_kib = 0
    for line in lines[1:]:
        fields = line.split()
        if len(fields) >= 4 and fields[2] == str(pid):
            size = fields[3].upper()
            scale = {"K": 1, "M": 1024, "G": 1024**2}.get(size[-1:], 1 / 1024)
            total_kib += float(size.rstrip("KMGB") or 0) * scale
    return total_kib / 1024


def nvml_process_reader(pid: int):
    """A function giving `pid`'s memory on the NVIDIA GPUs NVML sees, in MB; None where NVML has no answer
    (no library, no driver, a Jetson)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # pynvml missing, no driver, or no device: all mean "unavailable"
        return None

    def used_mb() -> float:
        used = 0
        for handle in handles:
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid == pid and process.usedGpuMemory:
                    used += process.usedGpuMemory
        return used / 2**20

    return used_mb


def process_gpu_reader(pid: int | None = None, root: Path = Path("/")):
    """A function giving this process's GPU memory in MB (nvmap on a Jetson, NVML on a discrete GPU), decided
    once; None where neither answers."""
    pid = pid or os.getpid()
    if nvmap_process_mb(pid, root) is not None:
        return lambda: nvmap_process_mb(pid, root)
    return nvml_process_reader(pid)


def judge_system_memory(row, idle_before_mb: float, idle_after_mb: float) -> None:
    """Label a row's system-wide figure contaminated when used memory moved by more than CONTAMINATION_MB between
    just before this engine's process started and just after it ended: other processes were at work."""
    drift = idle_after_mb - idle_before_mb
    if abs(drift) > CONTAMINATION_MB and not row.system_mem_note:
        row.system_mem_note = (f"contaminated: system-wide used memory moved {drift:+.0f} MB from before to after this "
                               "engine's process; other processes were allocating")


@dataclass
class MemoryPeaks:
    """Peaks seen while the watcher ran, in MB. `system_mb` is above the idle figure given at start; `others_mb`
    is how far system-wide use beyond this process's own (RSS and readable GPU memory) rose meanwhile."""

    rss_mb: float = 0.0
    system_mb: float = 0.0
    gpu_mb: float | None = None
    others_mb: float = 0.0


class MemoryWatcher:
    """Samples RSS, system and GPU memory in a thread (default 20 Hz) to catch short peaks."""

    def __init__(self, idle_system_mb: float, sample_hz: float = 20.0, root: Path = Path("/")):
        self.idle_system_mb = idle_system_mb
        self.peaks = MemoryPeaks()
        self._root = root
        self._gpu = process_gpu_reader(root=root)
        self._others_at_start: float | None = None
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
        rss, system = rss_mb(), system_used_mb(self._root) - self.idle_system_mb
        gpu = self._gpu() if self._gpu else None
        self.peaks.rss_mb = max(self.peaks.rss_mb, rss)
        self.peaks.system_mb = max(self.peaks.system_mb, system)
        if gpu is not None:
            self.peaks.gpu_mb = max(self.peaks.gpu_mb or 0.0, gpu)
        others = system - rss - (gpu or 0.0)
        if self._others_at_start is None:
            self._others_at_start = others
        self.peaks.others_mb = max(self.peaks.others_mb, others - self._others_at_start)
