"""`asr-engines convert moonshine-cpp [WHEEL] --out DIR`: a Hugging Face checkpoint from weights shipped for another
runtime, made offline, so `asr-engines export` can take it like any checkpoint folder (export/moonshine_cpp.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from asr_engines.export.moonshine_cpp import VERSION, ConversionError, convert, fetch_wheel

EXAMPLES = f"""Examples:

\b
  asr-engines convert moonshine-cpp --out models/moonshine-base
  asr-engines convert moonshine-cpp ~/wheels/moonshine_cpp-{VERSION}-py3-none-manylinux2014_x86_64.whl --out models/moonshine-base
  asr-engines export models/moonshine-base --out onnx/moonshine-base    # then, as for any model
"""


@click.command(epilog=EXAMPLES, help=(
    "Turn SOURCE's weights into a Hugging Face checkpoint folder. moonshine-cpp: Moonshine base from the pinned "
    f"moonshine-cpp {VERSION} wheel (WHEEL, or fetched once into .cache/wheels), sha256-checked, its int8 weights "
    "dequantized to float32."))
@click.argument("source", type=click.Choice(["moonshine-cpp"]))
@click.argument("wheel", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The checkpoint folder to write (replaced whole once complete).")
def command(source: str, wheel: Path | None, out_dir: Path) -> None:
    try:
        wheel = wheel or fetch_wheel()
        click.echo(f"converting {wheel.name} ...", err=True)
        convert(wheel, out_dir)
    except (ConversionError, OSError) as error:
        sys.exit(f"convert: {error}")
    click.echo(f"wrote {out_dir} (MoonshineForConditionalGeneration, its processor, source.json)")
