"""Where a result was measured: board, Jetson Linux release, power mode, clocks, GPU, CPU, backend versions."""

from __future__ import annotations

import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from asr_engines.host import host_summary

BACKEND_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "tensorrt", "pycuda", "numpy")


def device_fingerprint(root: Path = Path("/")) -> dict:
    """Everything that changes speed or energy figures and can be read without root."""
    fingerprint = host_summary()
    fingerprint["jetson_model"] = _read(root / "proc" / "device-tree" / "model")
    fingerprint["nvpmodel"] = _command(["nvpmodel", "-q"])
    fingerprint["jetson_clocks"] = _command(["jetson_clocks", "--show"], first_line_only=True)
    fingerprint["gpu"] = _gpu()
    fingerprint["packages"] = {name: _version(name) for name in BACKEND_PACKAGES if _version(name)}
    parts = (fingerprint[key] for key in ("hostname", "jetson_model", "l4t", "nvpmodel", "cpu"))
    fingerprint["id"] = " / ".join(str(part) for part in parts if part)
    return fingerprint


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip("\x00\n ")
    except OSError:
        return None


def _command(command: list[str], first_line_only: bool = False) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    try:
        output = subprocess.run(command, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return None
    return lines[0] if first_line_only else " | ".join(lines)


def _gpu() -> dict | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        return {"name": name.decode() if isinstance(name, bytes) else name,
                "driver": pynvml.nvmlSystemGetDriverVersion()}
    except Exception:  # no pynvml, no driver, no device (every Jetson): not an error
        return None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None
