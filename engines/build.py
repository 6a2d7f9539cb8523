"""Export folder -> engines: one sidecar and its engine files per precision variant, written atomically."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from calibration.datasets import DEFAULT_DATASET, dataset_fingerprint, load_dataset
from calibration.stream import CalibrationStream, calibration_stream
from common.files import publish, sha256_file, staging_dir
from common.host import host_summary
from common.processes import in_fresh_process
from engines.assets import decoder, front_end, graph_parts, read_export
from engines.builder import PRECISIONS, Builder, BuildOptions, make_builder
from engines.profiles import dimension_ranges
from engines.sidecar import write_sidecar


@dataclass(frozen=True)
class CalibrationSettings:
    """Which audio calibrates INT8: how many utterances, how many of them noisy, and with what noise."""

    dataset: Path = DEFAULT_DATASET
    count: int = 32
    noisy_fraction: float = 0.5
    noise: str = "study"
    seed: int = 0
    length_s: float | None = None


def build_engines(
    onnx_dir: str | Path,
    out_dir: str | Path,
    builder: Builder,
    precisions: Sequence[str] = PRECISIONS,
    calibration: CalibrationSettings = CalibrationSettings(),
    progress: bool = True,
    options: BuildOptions | None = None,
) -> list[Path]:
    """Build every precision of the model exported in `onnx_dir`; return the sidecar paths written.

    Each engine's files appear in `out_dir` only once the whole engine is built: a failed build
    leaves nothing behind (and an older engine of the same name untouched).
    """
    from tqdm import tqdm

    onnx_dir, out_dir = Path(onnx_dir), Path(out_dir)
    unknown = [precision for precision in precisions if precision not in PRECISIONS]
    if unknown:
        raise ValueError(f"unknown precision {unknown[0]!r}; choose from {', '.join(PRECISIONS)}")
    options = options or BuildOptions(durations_s=dataset_durations(calibration.dataset), timing_cache=out_dir / "timing.cache")
    export = read_export(onnx_dir)
    parts = graph_parts(export)
    family = export["family"]
    model_front_end = front_end(onnx_dir, family)
    model_decoder = decoder(onnx_dir, family)
    common = {
        "model": export["model"],
        "source": export["source"],
        "family": family,
        "backend": builder.backend,
        "backend_version": builder.version(),
        "source_onnx": {part.name: {"file": part.file, "sha256": sha256_file(onnx_dir / part.file)} for part in parts},
        "front_end": model_front_end.config(),
    }
    variants = [(precision, variant) for precision in precisions for variant in builder.variants(precision)]
    stream: CalibrationStream | None = None
    written = []
    for precision, variant in tqdm(variants, desc=f"{export['model']} engines", disable=not progress, unit="engine"):
        calibrated = builder.needs_calibration(variant)
        if calibrated and stream is None:
            stream = _calibration(calibration, model_front_end)
        stem = f"{export['model']}-{variant}"
        with staging_dir(out_dir) as scratch:
            started = time.perf_counter()
            files, details = {}, {}
            for part in parts:
                part_variant = builder.part_variant(variant, part.calibrated)
                target = scratch / (f"{stem}{builder.suffix}" if len(parts) == 1 else f"{stem}.{part.name}{builder.suffix}")
                part_options = replace(options, dimensions=dimension_ranges(
                    family, part.name, onnx_dir, options.durations_s, options.profile_s, options.max_batch))
                arguments = (onnx_dir / part.file, target, part_variant, stream if part.calibrated and calibrated else None, part_options)
                if builder.isolate_builds:
                    details[part.name] = in_fresh_process(_build_here, builder.backend, *arguments)
                else:
                    details[part.name] = builder.build(*arguments)
                details[part.name]["variant"] = part_variant
                files[part.name] = target.name
            assets = _stage_assets(onnx_dir, model_decoder, scratch, stem)
            sidecar = scratch / f"{stem}.json"
            write_sidecar(sidecar, {
                "engine": stem,
                "precision": precision,
                "variant": variant,
                **common,
                "decoder": assets,
                "files": files,
                "io": {part: detail.pop("io") for part, detail in details.items()},
                "build": details,
                "calibration": {**stream.description, "sha256": stream.sha256} if calibrated else None,
                "build_s": round(time.perf_counter() - started, 2),
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "host": host_summary(),
            })
            extra = [scratch / assets["tokenizer"]] if "tokenizer" in assets else []
            publish([scratch / name for name in files.values()] + extra + [sidecar], out_dir)
        written.append(out_dir / sidecar.name)
    return written


def _stage_assets(onnx_dir: Path, model_decoder: dict, scratch: Path, stem: str) -> dict:
    """Copy the files the decoder needs (Whisper's tokenizer.json) beside the engine; return its settings."""
    import shutil

    if "tokenizer" not in model_decoder:
        return model_decoder
    name = f"{stem}.tokenizer.json"
    shutil.copyfile(onnx_dir / model_decoder["tokenizer"], scratch / name)
    return {**model_decoder, "tokenizer": name}


def _build_here(backend: str, *arguments) -> dict:
    return make_builder(backend).build(*arguments)


def dataset_durations(dataset: Path) -> tuple[float, ...]:
    """Utterance lengths in seconds, read from the file headers (no decoding)."""
    import soundfile

    return tuple(soundfile.info(str(utterance.audio_path)).duration for utterance in load_dataset(dataset))


def _calibration(settings: CalibrationSettings, model_front_end) -> CalibrationStream:
    utterances = load_dataset(settings.dataset)
    stream = calibration_stream(
        utterances, model_front_end, count=settings.count, noisy_fraction=settings.noisy_fraction,
        noise=settings.noise, seed=settings.seed, length_s=settings.length_s,
    )
    stream.description["dataset"] = str(settings.dataset)
    stream.description["dataset_sha256"] = dataset_fingerprint(utterances)
    return stream

