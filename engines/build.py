"""Export folder -> engines: one manifest and its engine files per variant, each engine published whole or not at all."""

from __future__ import annotations

import itertools
import json
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
from asr_engines.engines.passes.attention import fuse_attention
from asr_engines.engines.passes.screened_head import add_screened_head
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
    judge: JudgeFactory | None = None,
) -> list[Path]:
    """Build every precision of the model exported in `onnx_dir`; return the manifest paths written.

    Each engine's files appear in `out_dir` only once the whole engine is built: a failed build
    leaves nothing behind (and an older engine of the same name untouched). The int8 engines share one
    decision of which nodes stay float: the rule's, then the WER budget's where a probe is given (int8_budget.py).
    `judge` measures each engine's speed choices (its graphs' forms, Whisper's trim margin: measure/choices.py);
    without it an engine takes its safest form and the runtime's default margin.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    variants = [variant for precision in map(Precision.parse, precisions) for variant in builder.variants(precision)]
    model = read_exported_model(Path(onnx_dir))  # a broken export is refused before out_dir is made
    stream: CalibrationStream | None = None
    decision: Int8Decision | None = None
    engine_judge = judge(model) if judge is not None else None
    written = []
    for variant in tqdm(variants, desc=f"{model.name} engines", disable=not progress, unit="engine"):
        # Only an engine with a calibrated graph reads the stream and the budget's decision (not ONNX Runtime's CPU
        # int8 Whisper or Moonshine, whose graphs are quantized per call or stay fp32): none is made for the others.
        calibrated = any(form.calibrated for part in model.parts for form in builder.part_variants(variant, part))
        if calibrated and stream is None:
            stream = make_calibration_stream(calibration, model)
            decision = decide_int8(model, stream, int8_probe, int8_budget, out_dir)
        written.append(build_engine(model, variant, builder, stream, out_dir, decision, engine_judge))
    return written


def candidate_forms(model: ExportedModel, variant: Variant, builder: Builder) -> list[dict[str, Variant]]:
    """Each form a `variant` engine of `model` may take (graph -> what it is built as), fastest first."""
    choices = [builder.part_variants(variant, part) for part in model.parts]
    return [dict(zip((part.name for part in model.parts), forms)) for forms in itertools.product(*choices)]


def build_engine(model: ExportedModel, variant: Variant, builder: Builder, stream: CalibrationStream | None,
                 out_dir: Path, decision: Int8Decision | None = None, judge: EngineJudge | None = None) -> Path:
    """One engine: each graph built in staging, the assets and the manifest beside them, then all published (the
    manifest last: it marks the engine complete).

    Where it may take several forms, or trims its encoder, `judge` measures the staged engine, fastest form first,
    and the first within its budget is kept (else the last); the manifest records what was measured (`decoder.trim`,
    `int8_forms`) before anything is published. Without a judge the engine takes its last, safest form."""
    stem = f"{model.name}-{variant}"
    every_form = candidate_forms(model, variant, builder)
    forms = every_form if judge is not None else every_form[-1:]
    with staging_dir(out_dir) as scratch:
        started = time.perf_counter()
        decoder = _stage_decoder_assets(model, scratch, stem)
        decoder_files = [decoder["tokenizer"]] if "tokenizer" in decoder else []
        manifest = scratch / f"{stem}.json"
        built: dict[str, Variant] = {}
        files, details, extra, tried = {}, {}, [scratch / name for name in decoder_files], []
        index = 0
        while True:
            form, last = forms[index], index == len(forms) - 1
            for part in model.parts:
                if built.get(part.name) != form[part.name]:  # else the same graph as in the form tried before
                    files[part.name], details[part.name], part_extra = _build_graph(
                        model, part, variant, form[part.name], builder, stem, scratch, stream, out_dir, decision)
                    extra += [file for file in part_extra if file not in extra]
                    built[part.name] = form[part.name]
            calibrated = any(graph_variant.calibrated for graph_variant in form.values())
            record = EngineManifest(
                engine=stem, model=model.name, family=model.family, precision=variant.precision, variant=variant,
                backend=builder.backend, front_end=model.front_end.config(), decoder=decoder, files=dict(files),
                io={part: detail["io"] for part, detail in details.items()},
                build={part: {key: value for key, value in detail.items() if key != "io"} for part, detail in details.items()},
                files_sha256={name: sha256_file(scratch / name) for name in [*files.values(), *decoder_files]},
                chunking=model.chunking, source=model.source, backend_version=builder.version(),
                source_onnx={part.name: {"file": part.file, "sha256": sha256_file(model.dir / part.file)} for part in model.parts},
                calibration={**stream.description, "sha256": stream.sha256} if stream is not None and calibrated else None,
                int8_budget=decision.budget if decision and calibrated else None,
                build_s=round(time.perf_counter() - started, 2),
                built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), host=host_summary())
            write_manifest(manifest, record)
            trims = any(detail.get("sliced_positions") for detail in details.values())
            if judge is None or (len(forms) == 1 and not trims):
                break
            judgement = judge(manifest, last)
            tried.append({"forms": {part: str(graph_variant) for part, graph_variant in form.items()}, **judgement})
            if judgement["within"] or last:
                break
            index = index + 1 if judgement["judged"] else len(forms) - 1  # unjudged: straight to the safest form
        write_manifest(manifest, with_judgements(record, tried, several=len(every_form) > 1))
        publish([scratch / name for name in files.values()] + extra + [manifest], out_dir)
    return out_dir / manifest.name


#: (a staged engine's manifest, whether it is its last candidate form) -> what its speed choices cost, `within` the
#: budget or not (measure/choices.py).
EngineJudge = Callable[[Path, bool], dict]
#: The model -> the judge of each of its engines (measure/choices.py's `engine_judge`).
JudgeFactory = Callable[[ExportedModel], EngineJudge]


def _build_graph(model: ExportedModel, part: GraphPart, variant: Variant, graph_variant: Variant, builder: Builder, stem: str,
                 scratch: Path, stream: CalibrationStream | None, out_dir: Path,
                 decision: Int8Decision | None) -> tuple[str, dict, list[Path]]:
    """One graph of a `variant` engine built into `scratch` as `graph_variant`: its file's name, details and extra files."""
    name = f"{stem}{builder.suffix}" if len(model.parts) == 1 else f"{stem}.{part.name}{builder.suffix}"
    calibrated = graph_variant.calibrated
    wanted = builder.greedy_head(variant) if part.token_head else ""
    # the screened head is the KV-cache decoder's; the prompt decoder, read once per window, takes the argmax head
    head = "argmax" if wanted == "screened" and part.token_head != "next" else wanted
    num_heads = attention_heads(model.dir, part) if builder.fuses_attention(variant) else 0
    prepared, fused = prepared_graph(model.dir, part, model.decoder, scratch, head, num_heads)
    job = GraphJob(model.dir, model.family, part, graph_variant, scratch / name, stream if calibrated else None, out_dir,
                   decision.float_nodes.get(part.name) if decision and calibrated else None, prepared)
    details = in_fresh_process(_build, builder, job) if builder.isolate_builds else builder.build(job)
    details["variant"] = graph_variant
    if head:
        details["greedy_head"] = head
    if fused:
        details["fused_attention"] = fused
    return name, details, [scratch / file for file in details.pop("extra_files", [])]


def with_judgements(record: EngineManifest, tried: list[dict], several: bool) -> EngineManifest:
    """The manifest with what its judge measured: Whisper's kept margin in `decoder.trim`; where its graphs could
    take several forms, each form tried and its cost in `int8_forms` (with none tried: kept unmeasured, the safest)."""
    kept = {part: str(details["variant"]) for part, details in record.build.items()}
    shared = ("reference", "utterances", "noise", "noise_draws", "budget_points")
    forms = None
    if several:
        forms = {"kept": kept, "judged": any(entry["judged"] for entry in tried),
                 **{key: tried[0][key] for key in shared if tried}, "tried": [
                     {key: value for key, value in entry.items() if key not in shared} for entry in tried]}
        if not tried:
            forms["note"] = "not measured (no judge: --choice-budget off, or asr-engines[bench] missing): the safest form"
    decoder = record.decoder
    if tried and "margin_s" in tried[-1]:  # a Whisper encoder that trims
        decoder = {**decoder, "trim": {key: value for key, value in tried[-1].items() if key not in ("forms", "within")}}
    return replace(record, decoder=decoder, int8_forms=forms)


def prepared_graph(export_dir: Path, part: GraphPart, decoder: dict, scratch: Path, head: str,
                   num_heads: int = 0) -> tuple[Path | None, int]:
    """The exported graph of `part` with its family's passes applied, written into `scratch` (None: it has none),
    and how many attentions were fused. `decoder`: the decoder settings the manifest records; `head`: the greedy
    head to add, `argmax` or `screened` (Builder.greedy_head) or "" (none); `num_heads`: the attentions' head count
    where they are to be fused (passes/attention.py), else 0."""
    head = head if part.token_head else ""
    if not head and not num_heads:
        return None, 0
    prepared = scratch / f"{part.name}.passes.onnx"
    if head == "screened":
        add_screened_head(export_dir / part.file, prepared, decoder)
    elif head:
        add_token_head(export_dir / part.file, prepared, decoder, first=part.token_head == "first")
    fused = fuse_attention(prepared if head else export_dir / part.file, prepared, num_heads) if num_heads else 0
    return prepared, fused


def attention_heads(export_dir: Path, part: GraphPart) -> int:
    """The head count of `part`'s attentions, where its family fuses them (GraphPart.attention_heads), else 0."""
    if not part.attention_heads:
        return 0
    return int(json.loads((export_dir / "config.json").read_text())[part.attention_heads])


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
