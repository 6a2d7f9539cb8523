"""Export folder -> engines: one manifest and its engine files per variant, each engine published whole or not at all."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from asr_engines.calibration.datasets import DEFAULT_DATASET, dataset_fingerprint, load_dataset
from asr_engines.calibration.stream import CalibrationStream, calibration_stream
from asr_engines.engines.assets import ExportedModel, read_exported_model
from asr_engines.engines.builder import Builder, GraphJob
from asr_engines.engines.int8.budget import Int8Budget, Int8Decision, ProbeFactory, decide_int8
from asr_engines.engines.passes.token_head import add_token_head
from asr_engines.families import GraphPart
from asr_engines.files import publish, sha256_file, staging_dir
from asr_engines.host import host_summary
from asr_engines.manifest import EngineManifest, write_manifest
from asr_engines.processes import in_fresh_process
from asr_engines.variants import PRECISIONS, Precision, Variant


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
    precisions: Sequence[Precision | str] = PRECISIONS,
    calibration: CalibrationSettings = CalibrationSettings(),
    progress: bool = True,
    int8_probe: ProbeFactory | None = None,
    int8_budget: Int8Budget | None = None,
    trim_decider: TrimDeciderFactory | None = None,
) -> list[Path]:
    """Build every precision of the model exported in `onnx_dir`; return the manifest paths written.

    Each engine's files appear in `out_dir` only once the whole engine is built: a failed build
    leaves nothing behind (and an older engine of the same name untouched). The int8 engines share one
    decision of which nodes stay float: the rule's, then the WER budget's where a probe is given (int8_budget.py).
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    variants = [variant for precision in map(Precision.parse, precisions) for variant in builder.variants(precision)]
    model = read_exported_model(Path(onnx_dir))  # a broken export is refused before out_dir is made
    stream: CalibrationStream | None = None
    decision: Int8Decision | None = None
    decide_trim = trim_decider(model) if trim_decider is not None and model.family == "whisper" else None
    written = []
    for variant in tqdm(variants, desc=f"{model.name} engines", disable=not progress, unit="engine"):
        # Only an engine with a calibrated graph reads the stream and the budget's decision (not ONNX Runtime's CPU
        # int8 Whisper or Moonshine, whose encoder stays fp32): none is made for the others.
        calibrated = any(builder.part_variant(variant, part).calibrated for part in model.parts)
        if calibrated and stream is None:
            stream = make_calibration_stream(calibration, model)
            decision = decide_int8(model, stream, int8_probe, int8_budget, out_dir)
        written.append(build_engine(model, variant, builder, stream, out_dir, decision, decide_trim))
    return written


def build_engine(model: ExportedModel, variant: Variant, builder: Builder, stream: CalibrationStream | None,
                 out_dir: Path, decision: Int8Decision | None = None, decide_trim: Callable[[Path], dict | None] | None = None) -> Path:
    """One engine: each graph built in staging, the assets and the manifest beside them, then all published (the
    manifest last: it marks the engine complete). `decide_trim` measures the staged engine's encoder trim margin
    (measure/trim_probe.py); its record joins the manifest's decoder settings before anything is published."""
    stem = f"{model.name}-{variant}"
    part_variants = {part.name: builder.part_variant(variant, part) for part in model.parts}
    if not any(part_variant.calibrated for part_variant in part_variants.values()):
        stream = decision = None  # no graph of it reads them (fp32, fp16, ONNX Runtime's CPU int8 Whisper): the manifest says none
    with staging_dir(out_dir) as scratch:
        started = time.perf_counter()
        files, details, extra = {}, {}, []
        for part in model.parts:
            name = f"{stem}{builder.suffix}" if len(model.parts) == 1 else f"{stem}.{part.name}{builder.suffix}"
            part_variant = part_variants[part.name]
            job = GraphJob(model.dir, model.family, part, part_variant, scratch / name, stream if part_variant.calibrated else None,
                           out_dir, decision.float_nodes.get(part.name) if decision else None,
                           prepared_graph(model.dir, part, model.decoder, scratch) if builder.greedy_head else None)
            details[part.name] = in_fresh_process(_build, builder, job) if builder.isolate_builds else builder.build(job)
            details[part.name]["variant"] = part_variant
            extra += [scratch / file for file in details[part.name].pop("extra_files", [])]
            files[part.name] = name
        decoder = _stage_decoder_assets(model, scratch, stem)
        decoder_files = [decoder["tokenizer"]] if "tokenizer" in decoder else []
        extra += [scratch / name for name in decoder_files]
        manifest = scratch / f"{stem}.json"
        record = EngineManifest(
            engine=stem, model=model.name, family=model.family, precision=variant.precision, variant=variant,
            backend=builder.backend, front_end=model.front_end.config(), decoder=decoder, files=files,
            io={part: detail.pop("io") for part, detail in details.items()}, build=details,
            files_sha256={name: sha256_file(scratch / name) for name in [*files.values(), *decoder_files]},
            chunking=model.chunking, source=model.source, backend_version=builder.version(),
            source_onnx={part.name: {"file": part.file, "sha256": sha256_file(model.dir / part.file)} for part in model.parts},
            calibration={**stream.description, "sha256": stream.sha256} if stream is not None else None,
            int8_budget=decision.budget if decision else None, build_s=round(time.perf_counter() - started, 2),
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), host=host_summary())
        write_manifest(manifest, record)
        trim = decide_trim(manifest) if decide_trim is not None else None
        if trim is not None:
            write_manifest(manifest, replace(record, decoder={**record.decoder, "trim": trim}))
        publish([scratch / name for name in files.values()] + extra + [manifest], out_dir)
    return out_dir / manifest.name


#: The model -> a decider of each of its engines' encoder trim margin (measure/trim_probe.py's `trim_decider`).
TrimDeciderFactory = Callable[[ExportedModel], Callable[[Path], dict | None]]


def prepared_graph(export_dir: Path, part: GraphPart, decoder: dict, scratch: Path) -> Path | None:
    """The exported graph of `part` with its family's passes applied, written into `scratch` (None: it has none).
    `decoder`: the decoder settings the manifest records."""
    if not part.token_head:
        return None
    prepared = scratch / f"{part.name}.head.onnx"
    add_token_head(export_dir / part.file, prepared, decoder, first=part.token_head == "first")
    return prepared


def _stage_decoder_assets(model: ExportedModel, scratch: Path, stem: str) -> dict:
    """Copy the files the decoder needs (Whisper's tokenizer.json) beside the engine; return its settings."""
    if "tokenizer" not in model.decoder:
        return model.decoder
    name = f"{stem}.tokenizer.json"
    shutil.copyfile(model.dir / model.decoder["tokenizer"], scratch / name)
    return {**model.decoder, "tokenizer": name}


def _build(builder: Builder, job: GraphJob) -> dict:
    return builder.build(job)


def make_calibration_stream(settings: CalibrationSettings, model: ExportedModel) -> CalibrationStream:
    """The calibration stream `settings` describe, in `model`'s front end, with the dataset it came from."""
    utterances = load_dataset(settings.dataset)
    stream = calibration_stream(
        utterances, model.front_end, count=settings.count, noisy_fraction=settings.noisy_fraction,
        noise=settings.noise, seed=settings.seed, length_s=settings.length_s,
    )
    stream.description["dataset"] = str(settings.dataset)
    stream.description["dataset_sha256"] = dataset_fingerprint(utterances)
    return stream
