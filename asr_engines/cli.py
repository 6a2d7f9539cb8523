"""`asr-engines`: one command, a subcommand per job. Each subcommand's module is imported only when it runs (or
shows its help), after a check that the extras it needs are installed, so the base install answers
`asr-engines --help` and a missing extra is one line naming the `pip install` that adds it."""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass

import click

from asr_engines.extras import require


@dataclass(frozen=True)
class Subcommand:
    """Where a subcommand lives (`module:attribute`, a click command), what it needs and what it does in one line."""

    target: str
    extras: tuple[str, ...]
    summary: str


#: name -> subcommand, in the order of the pipeline. A new job is a new module in asr_engines/commands and a line here.
SUBCOMMANDS: dict[str, Subcommand] = {
    "convert": Subcommand("asr_engines.commands.convert:command", ("export", "cpu"), "Make a checkpoint from another runtime's weights."),
    "export": Subcommand("asr_engines.commands.export:command", ("export",), "Export a speech model to ONNX (Optimum)."),
    "calibrate": Subcommand("asr_engines.commands.calibrate:command", ("build",), "Calibration audio: datasets and noisy copies."),
    "build": Subcommand("asr_engines.commands.build:command", ("build",), "Build fp32/fp16/int8 engines from an export folder."),
    "transcribe": Subcommand("asr_engines.commands.transcribe:command", (), "Print what an engine hears in audio files."),
    "check": Subcommand("asr_engines.commands.check:command", (), "Re-hash every file of an engine against its manifest."),
    "serve": Subcommand("asr_engines.commands.serve:command", ("serve",), "Serve an engine over Wyoming and OpenAI's HTTP API."),
    "bench": Subcommand("asr_engines.commands.bench:command", ("bench",), "Measure engines: WER, speed, memory, energy."),
    "report": Subcommand("asr_engines.commands.report:command", ("report",), "Figures, tables and a pick from the results store."),
    "check-meter": Subcommand("asr_engines.commands.check_meter:command", ("bench",), "Check a power meter under load."),
    "check-device": Subcommand("asr_engines.commands.check_device:command", ("build",), "Check the TensorRT layer on this machine."),
}


class LazyGroup(click.Group):
    """Lists SUBCOMMANDS without importing them; imports one when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        subcommand = SUBCOMMANDS.get(name)
        if subcommand is None:
            return None
        require(f"asr-engines {name}", *subcommand.extras)
        module, attribute = subcommand.target.split(":")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, subcommand.summary) for name, subcommand in SUBCOMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
             epilog="Examples:\n\n\b\n  asr-engines export wav2vec2 --out onnx/wav2vec2\n"
                    "  asr-engines build onnx/wav2vec2 --precisions 'fp32 int8'\n"
                    "  asr-engines bench engines/wav2vec2-*.json\n\n"
                    "`asr-engines COMMAND --help` shows each command's options and examples.")
@click.option("-v", "--verbose", count=True, help="More log lines: -v the libraries' too, -vv debug.")
@click.version_option(package_name="asr-engines")
def main(verbose: int) -> None:
    """Speech-recognition models as FP32/FP16/INT8 engines (TensorRT, ONNX Runtime), measured on the device that
    runs them."""
    # Our own progress lines (INFO) show by default; other libraries' only with -v.
    logging.basicConfig(level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("asr_engines").setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
