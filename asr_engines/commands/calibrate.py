"""`asr-engines calibrate`: fetch LibriSpeech splits; write a noisy copy of a dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import DEFAULT_DATASET, DatasetError, load_dataset
from asr_engines.calibration.download import SHA256, DownloadError, download_librispeech
from asr_engines.calibration.noise import NOISE_HELP, NoiseMixer, NoiseSpecError, noisy_draw, parse_noise

EXAMPLES = """Examples:

\b
  asr-engines calibrate download test-clean --to data
  asr-engines calibrate noisy --noise study --seed 4 --out data/noisy-4
"""


@click.group(epilog=EXAMPLES)
def command() -> None:
    """Audio for the pipeline: datasets, noise, calibration."""


@command.command()
@click.argument("split", type=click.Choice(list(SHA256)))
@click.option("--to", "destination", default="data", show_default=True, type=click.Path(file_okay=False))
def download(split: str, destination: str) -> None:
    """Download a LibriSpeech SPLIT from OpenSLR, verify its sha256 and unpack it."""
    try:
        click.echo(download_librispeech(split, destination))
    except DownloadError as error:
        sys.exit(f"calibrate: {error}")


@command.command()
@click.option("--dataset", default=str(DEFAULT_DATASET), show_default=True)
@click.option("--noise", default="study", show_default=True, help=NOISE_HELP)
@click.option("--seed", default=0, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
def noisy(dataset: str, noise: str, seed: int, out_dir: Path) -> None:
    """Write a noisy copy of DATASET (16 kHz FLAC + trans.txt), the same draw the bench uses for --seed."""
    import soundfile

    try:
        utterances = load_dataset(dataset)
        audio = {utterance.id: utterance.load() for utterance in utterances}
        mixer = NoiseMixer(parse_noise(noise), audio)
    except (DatasetError, NoiseSpecError) as error:
        sys.exit(f"calibrate: {error}")
    out_dir.mkdir(parents=True, exist_ok=True)
    for index, utterance in enumerate(utterances):
        samples = mixer.add(audio[utterance.id], noisy_draw(seed, 0, index), utterance.id)
        soundfile.write(out_dir / f"{utterance.id}.flac", np.clip(samples, -1, 1), SAMPLE_RATE)
    (out_dir / "noisy.trans.txt").write_text("".join(f"{u.id} {u.text}\n" for u in utterances))
    click.echo(f"{len(utterances)} utterances with {mixer.spec} noise (seed {seed}) -> {out_dir}")

