"""The JSON sidecar that travels with every engine: what it was built from, how, where, and how to run it.

An engine is one sidecar `<model>-<variant>.json` plus the files it names (one for CTC models, one per
graph for Whisper). The runtime reads only this file and the engine files: no transformers needed. The
sidecar holds each file's sha256, and the runtime checks them before loading: an fp32 file copied over the
int8 one must not run, and be measured, as int8.
"""

from __future__ import annotations

import json
from pathlib import Path

from common.files import cached_sha256, write_text_atomic

SIDECAR_FORMAT = 2  # 2: the sha256 of every file it names


class SidecarError(ValueError):
    """A missing or unreadable sidecar; the message says which file."""


def sidecar_path_for(path: str | Path) -> Path:
    """The sidecar of an engine, given the sidecar itself or any file it names.

    `wav2vec2-fp32.onnx` -> `wav2vec2-fp32.json`; `whisper-tiny.en-fp16.encoder.onnx` ->
    `whisper-tiny.en-fp16.json` (suffixes are stripped one at a time until a sidecar is found). A JSON file
    is its own sidecar unless a sidecar beside it names it (`whisper-tiny.en-fp16.tokenizer.json`), so a glob
    such as `engines/whisper-tiny.en-*.json` reaches each engine once.
    """
    path = Path(path)
    candidate = path
    while candidate.suffix:
        candidate = candidate.with_suffix("")
        sidecar = candidate.with_name(candidate.name + ".json")
        if sidecar != path and sidecar.is_file() and (path.suffix != ".json" or path.name in _named_files(sidecar)):
            return sidecar
    if path.suffix == ".json":
        return path
    raise SidecarError(f"{path}: no sidecar JSON found beside it (was it built by `python -m engines`?)")


def _named_files(sidecar: Path) -> set[str]:
    try:
        return set(json.loads(sidecar.read_text(encoding="utf-8")).get("files_sha256", {}))
    except (OSError, json.JSONDecodeError, AttributeError):
        return set()


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


def verify_files(sidecar: dict) -> None:
    """Refuse, in one line, an engine whose files are not those its sidecar was written with."""
    folder = Path(sidecar["_dir"])
    for name, digest in sidecar["files_sha256"].items():
        path = folder / name
        if not path.is_file():
            raise SidecarError(f"{path}: missing; its sidecar {sidecar['engine']}.json names it")
        if cached_sha256(path) != digest:
            raise SidecarError(f"{path} is not the file {sidecar['engine']}.json was built with (sha256 differs): "
                               "rebuild the engine, or put its own file back")


def write_sidecar(path: Path, data: dict) -> None:
    """Write a sidecar atomically, stamped with the format version."""
    write_text_atomic(path, json.dumps({"format": SIDECAR_FORMAT, **data}, indent=2, default=str) + "\n")
