"""The JSON sidecar that travels with every engine: what it was built from, how, where, and how to run it.

An engine is one sidecar `<model>-<variant>.json` plus the files it names (one for CTC models, one per
graph for Whisper). The runtime reads only this file and the engine files: no transformers needed.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.files import write_text_atomic

SIDECAR_FORMAT = 1


class SidecarError(ValueError):
    """A missing or unreadable sidecar; the message says which file."""


def sidecar_path_for(path: str | Path) -> Path:
    """The sidecar of an engine, given the sidecar itself or any file it names.

    `wav2vec2-fp32.onnx` -> `wav2vec2-fp32.json`; `whisper-tiny.en-fp16.encoder.onnx` ->
    `whisper-tiny.en-fp16.json` (suffixes are stripped one at a time until a sidecar is found).
    """
    path = Path(path)
    if path.suffix == ".json":
        return path
    candidate = path
    while candidate.suffix:
        candidate = candidate.with_suffix("")
        sidecar = candidate.with_name(candidate.name + ".json")
        if sidecar.is_file():
            return sidecar
    raise SidecarError(f"{path}: no sidecar JSON found beside it (was it built by `python -m engines`?)")


def read_sidecar(path: str | Path) -> dict:
    """Load the sidecar for `path` (an engine file or the sidecar itself); adds `_dir`, its folder."""
    sidecar = sidecar_path_for(path)
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SidecarError(f"{sidecar}: unreadable sidecar ({error})") from None
    if data.get("format") != SIDECAR_FORMAT:
        raise SidecarError(f"{sidecar}: sidecar format {data.get('format')!r}, this code reads {SIDECAR_FORMAT}; rebuild")
    data["_dir"] = str(sidecar.parent)
    return data


def write_sidecar(path: Path, data: dict) -> None:
    """Write a sidecar atomically, stamped with the format version."""
    write_text_atomic(path, json.dumps({"format": SIDECAR_FORMAT, **data}, indent=2, default=str) + "\n")
