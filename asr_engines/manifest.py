"""The engine manifest: the JSON file that travels with every engine, read and checked in this one place.

An engine is one manifest `<model>-<variant>.json` plus the files it names, beside it (one graph for CTC models,
three for Whisper, and Whisper's tokenizer). The build writes it last and atomically, so a manifest marks a
complete engine; the runtime and the bench read only it and the files it names. It records each file's sha256,
checked before loading: an fp32 file copied over the int8 one must not run, and be measured, as int8. The
format, field by field: docs/manifest.md.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

from asr_engines.files import cached_sha256, write_text_atomic
from asr_engines.variants import Precision, Variant

#: 2: the sha256 of every file it names. A reader takes its own format only: an older manifest is rebuilt,
#: a newer one needs a newer asr-engines.
MANIFEST_FORMAT = 2


class ManifestError(ValueError):
    """A missing, unreadable or invalid manifest, or an engine whose files are not those it names; one line that
    names the file and what to do."""


@dataclass(frozen=True)
class EngineManifest:
    """What an engine was built from, how, where, and how to run it."""

    engine: str  # the engine's name: <model>-<variant>
    model: str
    family: str  # the model family: "ctc", "whisper"
    precision: Precision
    variant: Variant
    backend: str  # "onnxruntime", "tensorrt"
    front_end: dict  # the front end's settings (asr_engines.features.front_end_from_config)
    decoder: dict  # what turns outputs into text: CTC vocabulary, or Whisper's prompt, suppressions, tokenizer file
    files: dict[str, str]  # graph -> its file, beside the manifest
    build: dict[str, dict]  # graph -> how it was built: variant, profile, float nodes, the TensorRT identity
    files_sha256: dict[str, str]  # every file the engine needs -> its sha256
    chunking: dict | None = None  # CTC: {"chunk_s", "stride_s"} for long recordings; Whisper reads long-form
    io: dict[str, dict] = field(default_factory=dict)  # graph -> its inputs and outputs
    source: str = ""  # where the model came from (Hub id, folder)
    backend_version: str = ""
    source_onnx: dict[str, dict] = field(default_factory=dict)  # graph -> the ONNX file built from, and its sha256
    calibration: dict | None = None  # the INT8 calibration stream's description, or None when no graph read it
    int8_budget: dict | None = None  # the INT8 WER budget's decision (engines/int8/budget.py)
    int8_forms: dict | None = None  # ONNX Runtime's CPU int8: the forms its graphs could take, each's cost, the kept one
    build_s: float | None = None
    built_at: str = ""
    host: dict = field(default_factory=dict)  # the machine it was built on
    format: int = MANIFEST_FORMAT
    folder: Path = field(default=Path("."), compare=False)  # where the manifest lies; not written

    def graph_variant(self, graph: str) -> Variant:
        """What one graph was built as (Whisper's decoders differ from the engine's variant in int8 engines)."""
        return Variant(self.build[graph]["variant"])

    def graph_path(self, graph: str) -> Path:
        return self.folder / self.files[graph]

    def verify_files(self, rehash: bool = False) -> int:
        """Refuse, in one line, an engine whose files are missing or not those it was built with; the bytes checked.

        A file's hash is remembered by size and modification time (`cached_sha256`), so a file damaged in place with
        both kept passes; `rehash` reads every file again (`asr-engines check`, docs/manifest.md)."""
        checked = 0
        for name, digest in self.files_sha256.items():
            path = self.folder / name
            if not path.is_file():
                raise ManifestError(f"{path}: missing; its manifest {self.engine}.json names it")
            checked += path.stat().st_size
            if cached_sha256(path, rehash=rehash) != digest:
                raise ManifestError(f"{path} is not the file {self.engine}.json was built with (sha256 differs): "
                                    "rebuild the engine, or put its own file back")
        return checked

    def to_json(self) -> str:
        record = {key: value for key, value in asdict(self).items() if key != "folder"}
        return json.dumps({"format": record.pop("format"), **record}, indent=2, default=str) + "\n"


def write_manifest(path: Path, manifest: EngineManifest) -> None:
    """Write a manifest atomically (a temporary file, then a rename): readers see all of it or none."""
    write_text_atomic(path, manifest.to_json())


def manifest_path_for(path: str | Path) -> Path:
    """The manifest of an engine, given the manifest itself or any file it names.

    `wav2vec2-fp32.onnx` -> `wav2vec2-fp32.json`; `whisper-tiny.en-fp16.encoder.onnx` ->
    `whisper-tiny.en-fp16.json` (suffixes are stripped one at a time until a manifest is found). A JSON file
    is its own manifest unless a manifest beside it names it (`whisper-tiny.en-fp16.tokenizer.json`), so a glob
    such as `engines/whisper-tiny.en-*.json` reaches each engine once.
    """
    path = Path(path)
    candidate = path
    while candidate.suffix:
        candidate = candidate.with_suffix("")
        manifest = candidate.with_name(candidate.name + ".json")
        if manifest != path and manifest.is_file() and (path.suffix != ".json" or path.name in _named_files(manifest)):
            return manifest
    if path.suffix == ".json":
        return path
    raise ManifestError(f"{path}: no manifest JSON found beside it (was it built by `asr-engines build`?)")


def _named_files(manifest: Path) -> set[str]:
    try:
        return set(json.loads(manifest.read_text(encoding="utf-8")).get("files_sha256", {}))
    except (OSError, json.JSONDecodeError, AttributeError):
        return set()


def load_manifest(path: str | Path) -> EngineManifest:
    """The manifest of `path` (an engine file or the manifest itself), checked: readable JSON of this format, every
    field of its type, every file it names inside its folder. ManifestError, one line, otherwise."""
    manifest = manifest_path_for(path)
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(f"{manifest}: unreadable manifest ({error})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{manifest}: not an engine manifest (a JSON object is expected)")
    version = data.get("format")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError(f"{manifest}: no manifest format number; rebuild the engine with `asr-engines build`")
    if version > MANIFEST_FORMAT:
        raise ManifestError(f"{manifest}: manifest format {version} is newer than this asr-engines reads ({MANIFEST_FORMAT}): "
                            "upgrade asr-engines")
    if version < MANIFEST_FORMAT:
        raise ManifestError(f"{manifest}: manifest format {version}, this asr-engines reads {MANIFEST_FORMAT}: "
                            "rebuild the engine with `asr-engines build`")
    values = {}
    hints = typing.get_type_hints(EngineManifest)
    for item in fields(EngineManifest):
        if item.name == "folder":
            continue
        if item.name not in data:
            if item.default is MISSING and item.default_factory is MISSING:
                raise ManifestError(f"{manifest}: missing key {item.name!r}; rebuild the engine with `asr-engines build`")
            continue
        values[item.name] = _checked(manifest, item.name, data[item.name], hints[item.name])
    for section, expected in NESTED.get(values["family"], {}).items():
        _check_nested(manifest, section, values[section], expected)
    for section, expected in NESTED_OPTIONAL.get(values["family"], {}).items():
        _check_nested(manifest, section, values[section], expected, required=False)
    for name in [*values["files"].values(), *values["files_sha256"]]:
        if Path(name).name != name or name in (".", ".."):
            raise ManifestError(f"{manifest}: names {name!r}, a file outside its folder; an engine's files lie beside its manifest")
    loaded = [*values["files"].values(), *(values["decoder"][key] for key in FILE_SETTINGS.get(values["family"], ()))]
    for name in loaded:
        if name not in values["files_sha256"]:
            raise ManifestError(f"{manifest}: loads {name!r} but files_sha256 has no checksum for it; "
                                "rebuild the engine with `asr-engines build`")
    return EngineManifest(**values, folder=manifest.parent)


#: The `decoder` settings that name a file the runtime loads, per family: each must be checksummed like the graphs.
FILE_SETTINGS: dict[str, tuple[str, ...]] = {"whisper": ("tokenizer",), "moonshine": ("tokenizer",)}

#: The settings inside `decoder` and `front_end` that each family's runtime reads, with their JSON types.
_NUMBER, _IDS = (int, float), list
NESTED: dict[str, dict[str, dict[str, type | tuple]]] = {
    "whisper": {
        "decoder": {"prompt": _IDS, "eos_id": int, "suppress_tokens": _IDS, "begin_suppress_tokens": _IDS, "max_length": int,
                    "timestamp_prompt": _IDS, "no_timestamps_id": int, "max_initial_timestamp_index": int, "tokenizer": str},
        "front_end": {"input_name": str, "num_mel_bins": int, "n_fft": int, "hop_length": int, "chunk_s": _NUMBER},
    },
    "moonshine": {
        "decoder": {"start_id": int, "eos_id": int, "max_tokens_per_s": _NUMBER, "max_length": int, "tokenizer": str},
        "front_end": {"input_name": str, "mask_name": str},
    },
    "ctc": {
        "decoder": {"vocabulary": list, "blank_id": int, "word_delimiter": str, "dropped_tokens": list},
        "front_end": {"input_name": str, "do_normalize": bool},
    },
}

#: Settings added since format 2 began: checked where present (engines built before them run as they were built).
NESTED_OPTIONAL: dict[str, dict[str, dict[str, type | tuple]]] = {
    "whisper": {"decoder": {"forced_start": _IDS, "languages": dict, "tasks": dict, "trim": dict}},
}


def _check_nested(manifest: Path, section: str, settings: dict, expected: dict[str, type | tuple], required: bool = True) -> None:
    for key, kind in expected.items():
        if key not in settings and not required:
            continue
        if key not in settings:
            raise ManifestError(f"{manifest}: {section}.{key} is missing; rebuild the engine with `asr-engines build`")
        value = settings[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            names = " or ".join(each.__name__ for each in (kind if isinstance(kind, tuple) else (kind,)))
            raise ManifestError(f"{manifest}: {section}.{key} should be {names}, not {type(value).__name__}")


def _checked(manifest: Path, key: str, value: object, hint: object) -> object:
    """`value` as field `key` of type `hint` takes it, or ManifestError saying what it should be."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        origin = typing.get_origin(option) or option
        if origin in (Precision, Variant) and isinstance(value, str):
            try:
                return origin(value)
            except ValueError:
                raise ManifestError(f"{manifest}: {key} {value!r} is none of {', '.join(map(str, origin))}") from None
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is dict and isinstance(value, dict):
            value_type = (typing.get_args(option) or (None, None))[1]
            if value_type in (str, dict) and not all(isinstance(item, value_type) for item in value.values()):
                raise ManifestError(f"{manifest}: {key} should map names to {value_type.__name__}s")
            return value
        if origin in (str, int) and isinstance(value, origin) and not isinstance(value, bool):
            return value
    wanted = " or ".join("null" if option is type(None) else getattr(typing.get_origin(option) or option, "__name__", str(option))
                         for option in options)
    raise ManifestError(f"{manifest}: {key} should be {wanted}, not {type(value).__name__}")
