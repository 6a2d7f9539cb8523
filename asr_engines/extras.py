"""Which optional part of the package a command needs, said in one line when it is not installed.

The base install is the runtime (numpy, tokenizers, soundfile, soxr): what an app needs to load an engine
and transcribe. Everything else is an extra (pyproject.toml); each command checks its extras before it
imports them, so a missing one is a line naming the pip command, never a traceback.
"""

from __future__ import annotations

import importlib.util
import sys

#: extra -> the top-level modules it provides that commands import.
EXTRAS: dict[str, tuple[str, ...]] = {
    "cpu": ("onnxruntime",),
    "export": ("torch", "transformers", "optimum"),
    "build": ("tqdm", "onnx"),
    "bench": ("tqdm", "jiwer", "transformers"),
    "report": ("matplotlib",),
    "serve": ("wyoming", "starlette", "uvicorn", "multipart", "prometheus_client"),
}


def missing_extras(*extras: str) -> dict[str, list[str]]:
    """extra -> its modules that cannot be imported here (only extras with something missing)."""
    missing = {}
    for extra in extras:
        absent = [module for module in EXTRAS[extra] if importlib.util.find_spec(module) is None]
        if absent:
            missing[extra] = absent
    return missing


def require(command: str, *extras: str) -> None:
    """Exit with one line if an extra `command` needs is not installed."""
    missing = missing_extras(*extras)
    if missing:
        modules = sorted({module for absent in missing.values() for module in absent})
        sys.exit(f"{command}: needs {', '.join(modules)}, not installed here: pip install 'asr-engines[{','.join(missing)}]'")
