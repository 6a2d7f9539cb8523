"""`asr-engines transcribe ENGINE AUDIO...`: print what an engine hears in each file. Needs only the base install
and a backend, so an app's machine can run it."""

from __future__ import annotations

import sys

import click

from asr_engines.audio import AudioError, Recording
from asr_engines.manifest import ManifestError
from asr_engines.runtime.backends import share_thread_pool
from asr_engines.runtime.engine import EngineError
from asr_engines.runtime.recognizer import load_recognizer
from asr_engines.runtime.whisper import PRECISION_DEFAULT, parse_trim_margin

EXAMPLES = """Examples:

\b
  asr-engines transcribe engines/wav2vec2-int8.json meeting.wav
  asr-engines transcribe engines/whisper-tiny.en-fp32.json data/*.flac --trim-margin off
  asr-engines transcribe engines/whisper-small-int8.json interview.mp3 --language fr --task translate
"""


@click.command(epilog=EXAMPLES)
@click.argument("engine")
@click.argument("audio", nargs=-1, required=True)
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the backend [default: the backend's].")
@click.option("--trim-margin", default=PRECISION_DEFAULT, show_default=True, metavar="SECONDS|off|default",
              help="Whisper on ONNX Runtime: run the encoder on the audio plus SECONDS, not a whole 30 s window (a window "
                   "whose text loops is decoded again whole); off: the whole window; default: the margin the engine's build "
                   "measured and kept (docs/results/2026-12-05-trim-decision.md).")
@click.option("--language", help="A multilingual Whisper's language (a code: fr) [default: detected per file].")
@click.option("--task", type=click.Choice(["transcribe", "translate"]), help="A multilingual Whisper's task (translate: into English).")
def command(engine: str, audio: tuple[str, ...], threads: int | None, trim_margin: str, language: str | None,
            task: str | None) -> None:
    """Transcribe each AUDIO file (any format soundfile reads, any rate, any channels) with ENGINE (an engine file or
    its .json manifest). One file: its text; several: path<TAB>text per line."""
    try:
        margin = parse_trim_margin(trim_margin)
        share_thread_pool(threads)
        recognizer = load_recognizer(engine, threads=threads, trim_margin_s=margin, language=language, task=task)
    except (ManifestError, EngineError, ValueError) as error:
        sys.exit(f"transcribe: {error}")
    failed = False
    with recognizer:
        for path in audio:
            try:
                with Recording(path) as recording:  # decoded to disk, read a window at a time: bounded memory
                    text = recognizer.transcribe(recording)
            except (AudioError, EngineError) as error:  # one line for this file; the others are still transcribed
                click.echo(f"transcribe: {error}" if isinstance(error, AudioError) else f"transcribe: {path}: {error}", err=True)
                failed = True
                continue
            click.echo(f"{path}\t{text}" if len(audio) > 1 else text)
    sys.exit(1 if failed else 0)
