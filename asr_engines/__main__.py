"""`python -m asr_engines`: the `asr-engines` command."""

from asr_engines.cli import main

main(prog_name="asr-engines")
