"""`asr-engines build ONNX_DIR`: build FP32/FP16/INT8 engines and their JSON manifests."""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import click

from asr_engines.calibration.datasets import DEFAULT_DATASET, DatasetError
from asr_engines.calibration.noise import NoiseSpecError
from asr_engines.engines.assets import AssetsError
from asr_engines.engines.backends import BUILDERS, make_builder
from asr_engines.engines.build import CalibrationSettings, JudgeFactory, build_engines
from asr_engines.engines.builder import BuilderUnavailable
from asr_engines.engines.int8.budget import Int8Budget, ProbeFactory
from asr_engines.engines.trt.options import TensorRTOptions
from asr_engines.engines.trt.rules import PrecisionMissing
from asr_engines.extras import missing_extras
from asr_engines.variants import PRECISIONS

EXAMPLES = """Examples:

\b
  asr-engines build onnx/wav2vec2 --precisions "fp32 fp16 int8"
  asr-engines build onnx/whisper-tiny.en --precisions int8 --int8-budget off --out engines
"""


@click.command(epilog=EXAMPLES)
@click.argument("onnx_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", default="engines", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--precisions", default=" ".join(map(str, PRECISIONS)), show_default=True, help="Space-separated: fp32 fp16 int8.")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", *BUILDERS]),
              help="auto: TensorRT plans when `import tensorrt` works, else ONNX Runtime models.")
@click.option("--calibration-dataset", default=str(DEFAULT_DATASET), show_default=True,
              help="LibriSpeech-layout folder or JSONL/CSV manifest feeding INT8 calibration.")
@click.option("--calibration-count", default=32, show_default=True, help="Utterances in the calibration stream.")
@click.option("--calibration-noisy", default=0.5, show_default=True, help="Fraction of them with noise added.")
@click.option("--calibration-noise", default="study", show_default=True, help="Noise spec for the noisy part.")
@click.option("--calibration-seed", default=0, show_default=True)
@click.option("--calibration-length", type=float, help="Seconds each sample is cropped/padded to [default: median].")
@click.option("--int8-mode", default="auto", show_default=True, type=click.Choice(["auto", "implicit", "explicit"]),
              help="TensorRT: implicit = entropy calibrator (<= 10), explicit = Q/DQ ONNX (>= 10); auto by version.")
@click.option("--profile-min-s", type=float, help="TensorRT profile: shortest input [default: the dataset's].")
@click.option("--profile-opt-s", type=float, help="TensorRT profile: tuned-for input [default: median].")
@click.option("--profile-max-s", type=float, help="TensorRT profile: longest input [default: the dataset's, rounded up].")
@click.option("--max-batch", default=1, show_default=True,
              help="TensorRT profile: largest batch (Whisper decodes up to this many 30 s windows at once).")
@click.option("--workspace-fraction", default=0.5, show_default=True, help="TensorRT workspace: share of free memory.")
@click.option("--qdq", is_flag=True, help="ONNX Runtime: also write int8's symmetric Q/DQ file (int8-qdq), the one a "
              "TensorRT >= 10 build reads: build it here, copy it to a board.")
@click.option("--strict-int8", is_flag=True,
              help="TensorRT: fail an int8 plan whose layers show no INT8 kernel (default: warn and note it in the manifest).")
@click.option("--int8-budget", default="0.5", show_default=True,
              help="WER points int8 may add to fp32 on held-out clean and noisy audio; nodes go back to float until it "
                   "holds. `off`: only the rule (the first conv and nodes under 30 dB SQNR stay float).")
@click.option("--int8-rounds", default=4, show_default=True, type=click.IntRange(min=0), help="Rounds the budget may take.")
@click.option("--choice-budget", default="0.5", show_default=True,
              help="ONNX Runtime: WER points each speed choice may cost against the same model's fp32 graphs on whole "
                   "windows, on clean and noisy audio: the CPU int8 engine's encoder form (int8, else fp32) and "
                   "Whisper's encoder trim margin (the shortest within it, else the whole window). `off`: the safest "
                   "form and the precision's default margin, unmeasured.")
@click.option("--int8-held-out", default=40, show_default=True, type=click.IntRange(min=1),
              help="Held-out utterances (of the calibration dataset, outside the stream) the budget is judged on.")
def command(onnx_dir: Path, out_dir: Path, precisions: str, backend: str, calibration_dataset: str,
         calibration_count: int, calibration_noisy: float, calibration_noise: str, calibration_seed: int,
         calibration_length: float | None, int8_mode: str, profile_min_s: float | None, profile_opt_s: float | None,
         profile_max_s: float | None, max_batch: int, workspace_fraction: float, qdq: bool, strict_int8: bool,
         int8_budget: str, int8_rounds: int, int8_held_out: int, choice_budget: str) -> None:
    """Build engines from ONNX_DIR (made by `asr-engines export`) into OUT as <model>-<precision>.<ext> + .json.

    INT8 is entropy-calibrated on one stream of clean and noisy utterances; with ONNX Runtime it is the form fast
    on a CPU, and `--qdq` adds `int8-qdq` (the symmetric Q/DQ file TensorRT >= 10 builds from).
    """
    settings = CalibrationSettings(Path(calibration_dataset), calibration_count, calibration_noisy,
                                   calibration_noise, calibration_seed, calibration_length)
    tensorrt = TensorRTOptions(profile_dataset=Path(calibration_dataset), profile_s=(profile_min_s, profile_opt_s, profile_max_s),
                               max_batch=max_batch, int8_mode=int8_mode, workspace_fraction=workspace_fraction,
                               timing_cache=out_dir / "timing.cache", strict_int8=strict_int8)
    budget, probe = int8_guard(int8_budget, int8_rounds, int8_held_out)
    judge = choice_guard(choice_budget, settings, int8_held_out)
    try:
        builder = make_builder(backend, tensorrt, qdq)
        manifests = build_engines(onnx_dir, out_dir, builder, precisions.split(), settings, int8_probe=probe,
                                  int8_budget=budget, judge=judge)
    except (AssetsError, BuilderUnavailable, DatasetError, NoiseSpecError, PrecisionMissing, ValueError) as error:
        sys.exit(f"build: {error}")
    except OSError as error:  # a full disk or quota, a folder that turned read-only: the staging folder is gone already
        sys.exit(f"build: could not write {written_file(error)}into {out_dir} ({error.strerror or error}); nothing was "
                 "published" + ("; free space there or build into another --out" if error.errno in FULL else ""))
    for manifest in manifests:
        click.echo(f"wrote {manifest}")


#: errno of a write that found no room: the disk, the user's quota, the largest file allowed.
FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def written_file(error: OSError) -> str:
    """The name, and a space, of the file an OSError was about (the target of a copy, else its only file); or ""."""
    path = error.filename2 or error.filename
    return f"{Path(path).name} " if path else ""


def budget_points(option: str, text: str) -> float | None:
    """A WER budget option's points, None for `off`; one line and a non-zero exit for anything else."""
    if text.strip().lower() == "off":
        return None
    try:
        points = float(text)
    except ValueError:
        sys.exit(f"build: {option} takes WER points (0.5) or off, not {text!r}")
    if points < 0:
        sys.exit(f"build: {option} must be at least 0 WER points")
    return points


def int8_guard(text: str, rounds: int, held_out: int) -> tuple[Int8Budget | None, ProbeFactory | None]:
    """The budget and its WER probe from the command line; ("off") none."""
    points = budget_points("--int8-budget", text)
    if points is None:
        return None, None
    missing = missing_extras("bench")
    if missing:
        sys.exit(f"build: the int8 WER budget transcribes held-out audio and needs {', '.join(missing['bench'])}: "
                 "pip install 'asr-engines[bench]', or --int8-budget off")
    from asr_engines.measure.int8_probe import (
        held_out_probe,  # the command wires the bench's WER probe into the build; the build library does not import it
    )

    return Int8Budget(points, rounds), lambda model, stream: held_out_probe(model, stream, held_out)


def choice_guard(text: str, settings: CalibrationSettings, utterances: int) -> JudgeFactory | None:
    """The judge of each engine's speed choices from the command line (measure/choices.py); ("off") none."""
    points = budget_points("--choice-budget", text)
    if points is None:
        return None
    if missing_extras("bench"):
        click.echo("build: without asr-engines[bench] engines take their safest form and Whisper's default trim, "
                   "unmeasured", err=True)
        return None
    from asr_engines.measure.choices import engine_judge  # wired here: the build library does not import measure

    return lambda model: engine_judge(model, settings.dataset, settings.noise, utterances, budget_points=points, seed=settings.seed)
