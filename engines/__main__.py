"""`python -m engines ONNX_DIR`: build FP32/FP16/INT8 engines and their JSON sidecars."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from calibration.datasets import DEFAULT_DATASET, DatasetError
from calibration.noise import NoiseSpecError
from engines.assets import AssetsError
from engines.build import CalibrationSettings, build_engines
from engines.builder import BUILDERS, PRECISIONS, BuilderUnavailable, make_builder


@click.command()
@click.argument("onnx_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", default="engines", show_default=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--precisions", default=" ".join(PRECISIONS), show_default=True, help="Space-separated: fp32 fp16 int8.")
@click.option("--backend", default="auto", show_default=True, type=click.Choice(["auto", *BUILDERS]),
              help="auto: TensorRT plans when `import tensorrt` works, else ONNX Runtime models.")
@click.option("--calibration-dataset", default=str(DEFAULT_DATASET), show_default=True,
              help="LibriSpeech-layout folder or JSONL/CSV manifest feeding INT8 calibration.")
@click.option("--calibration-count", default=32, show_default=True, help="Utterances in the calibration stream.")
@click.option("--calibration-noisy", default=0.5, show_default=True, help="Fraction of them with noise added.")
@click.option("--calibration-noise", default="study", show_default=True, help="Noise spec for the noisy part.")
@click.option("--calibration-seed", default=0, show_default=True)
@click.option("--calibration-length", type=float, help="Seconds each sample is cropped/padded to [default: median].")
def main(onnx_dir: Path, out_dir: Path, precisions: str, backend: str, calibration_dataset: str,
         calibration_count: int, calibration_noisy: float, calibration_noise: str, calibration_seed: int,
         calibration_length: float | None) -> None:
    """Build engines from ONNX_DIR (made by `python -m export`) into OUT as <model>-<precision>.<ext> + .json.

    INT8 is entropy-calibrated on one stream of clean and noisy utterances. With ONNX Runtime, int8 yields
    two engines: `int8` (the form fast on a CPU) and `int8-qdq` (the symmetric Q/DQ file TensorRT >= 10 builds).
    """
    settings = CalibrationSettings(Path(calibration_dataset), calibration_count, calibration_noisy,
                                   calibration_noise, calibration_seed, calibration_length)
    try:
        builder = make_builder(backend)
        sidecars = build_engines(onnx_dir, out_dir, builder, precisions.split(), settings)
    except (AssetsError, BuilderUnavailable, DatasetError, NoiseSpecError, ValueError) as error:
        sys.exit(f"engines: {error}")
    for sidecar in sidecars:
        click.echo(f"wrote {sidecar}")


if __name__ == "__main__":
    main()
