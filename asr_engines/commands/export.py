"""`asr-engines export MODEL --out DIR`: export a speech model to ONNX and check it against PyTorch."""

from __future__ import annotations

import sys
from dataclasses import replace

import click

from asr_engines.export.models import ALIASES, ModelError, resolve_model
from asr_engines.export.onnx_export import OPSET, ExportError, export_onnx

EXAMPLES = """Examples:

\b
  asr-engines export wav2vec2 --out onnx/wav2vec2
  asr-engines export random:wav2vec2-base   # offline: a real architecture, random weights
"""


@click.command(epilog=EXAMPLES + "\nAliases: " + ", ".join(f"{alias} ({hub})" for alias, hub in ALIASES.items()))
@click.argument("model")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output folder [default: onnx/<model>].")
@click.option("--name", help="Name for file names [default: the alias, or the folder / Hub name].")
@click.option("--opset", default=OPSET, show_default=True, help="ONNX opset; TensorRT 8.5/8.6 read at most 17.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Compare ONNX Runtime with PyTorch logits on a real utterance.")
def command(model: str, out_dir: str | None, name: str | None, opset: int, check: bool) -> None:
    """Export MODEL (an alias below, a Hugging Face Hub id, a local folder, or random:wav2vec2-base /
    random:wav2vec2-large for a real architecture with random weights, made offline) to ONNX.

    Uses Optimum's exporter (task automatic-speech-recognition, batch 1, dynamic length) and writes the
    processor/tokenizer files and an export.json report next to the ONNX.
    """
    try:
        source = resolve_model(model)
        source = replace(source, name=name) if name else source
        out_dir = out_dir or f"onnx/{source.name}"
        report = export_onnx(source, out_dir, opset=opset, check=check)
    except (ModelError, ExportError) as error:
        sys.exit(f"export: {error}")
    click.echo(f"exported {source.location} ({source.family}) -> {out_dir}: {', '.join(report.files)}")
    if report.max_abs_diff is not None:
        click.echo(f"ONNX Runtime vs PyTorch on {report.check_audio}: max abs diff {report.max_abs_diff:.3g}")

