"""`python -m runtime.transcribe ENGINE AUDIO...`: print what an engine hears in each file."""

from __future__ import annotations

import sys

import click

from common.audio import AudioError, load_audio
from engines.sidecar import SidecarError
from runtime.engine import EngineError
from runtime.recognizer import load_recognizer


@click.command()
@click.argument("engine", type=click.Path(exists=True, dir_okay=False))
@click.argument("audio", nargs=-1, required=True, type=click.Path())
@click.option("--threads", type=int, help="CPU threads for the backend [default: the backend's].")
def main(engine: str, audio: tuple[str, ...], threads: int | None) -> None:
    """Transcribe each AUDIO file (any format soundfile reads, any rate) with ENGINE (engine file or sidecar)."""
    try:
        recognizer = load_recognizer(engine, threads=threads)
    except (SidecarError, EngineError, ValueError) as error:
        sys.exit(f"transcribe: {error}")
    failed = False
    for path in audio:
        try:
            text = recognizer.transcribe(load_audio(path))
        except AudioError as error:
            click.echo(f"transcribe: {error}", err=True)
            failed = True
            continue
        click.echo(f"{path}\t{text}" if len(audio) > 1 else text)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
