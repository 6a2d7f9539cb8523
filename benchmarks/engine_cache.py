"""The benchmarks' engine caches (.cache/bench-*): reused only while the code that makes engines is unchanged.

A cache folder holds `code.sha256`, one hash over the source of the stages that write engines (asr_engines/,
export, calibration, engines) and of the measurements the build decides by (measure/choices.py and the probe it
reads). A benchmark takes its folder through `cache_for`, which empties it when the hash differs, so no figure
comes from an engine the current code would not build (a quantizer change once had to be caught by hand)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE_STAGES = ("asr_engines", "export", "calibration", "engines")
BUILD_MEASUREMENTS = ("measure/choices.py", "measure/int8_probe.py")


def code_hash() -> str:
    digest = hashlib.sha256()
    sources = [path for stage in ENGINE_STAGES for path in (ROOT / stage).rglob("*.py")] + [ROOT / file for file in BUILD_MEASUREMENTS]
    for path in sorted(sources):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def is_current(folder: Path) -> bool:
    """Whether `folder` was filled by the engine code as it is now."""
    stamp = folder / "code.sha256"
    return stamp.is_file() and stamp.read_text().strip() == code_hash()


def cache_for(folder: Path) -> Path:
    """`folder`, emptied first (and stamped anew) unless the current engine code filled it."""
    if not is_current(folder):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "code.sha256").write_text(code_hash() + "\n")
    return folder
