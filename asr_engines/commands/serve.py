"""`asr-engines serve wyoming|http ENGINE_JSON`: one engine, loaded once, served to every client (serve/)."""

from __future__ import annotations

import functools
import logging
import sys

import click

from asr_engines.audio import AudioError
from asr_engines.manifest import ManifestError
from asr_engines.runtime.engine import EngineError
from asr_engines.runtime.streaming import StreamOptions
from asr_engines.runtime.vad import VadOptions
from asr_engines.serve.app import ServeOptions, run

log = logging.getLogger(__name__)

EXAMPLES = """Examples:

\b
  asr-engines serve wyoming engines/whisper-tiny.en-hf-int8.json --uri tcp://0.0.0.0:10300
  asr-engines serve wyoming engines/whisper-tiny.en-hf-int8.json --endpoint 0.8 --http 0.0.0.0:8000
  asr-engines serve http engines/whisper-tiny.en-hf-int8.json --host 0.0.0.0 --port 8000 --api-key "$KEY"
  curl localhost:8000/v1/audio/transcriptions -F file=@speech.wav -F model=whisper-tiny.en-hf-int8
"""


def host_port(text: str | None) -> tuple[str, int] | None:
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"HOST:PORT, not {text!r}")
    return host, int(port)


def serving_options(function):
    """The options both protocols share: the engine, the scheduler, the streams' VAD."""
    @click.argument("engine")
    @click.option("--max-streams", default=8, show_default=True, type=click.IntRange(min=1),
                  help="Streams (utterances, requests) open at once; past it a client is told the server is busy.")
    @click.option("--concurrency", default=1, show_default=True, type=click.IntRange(min=1),
                  help="Streams decoded at the same time (threads sharing the engine; TensorRT: 1).")
    @click.option("--threads", type=click.IntRange(min=1), help="CPU threads per decode for the backend [default: the backend's].")
    @click.option("--vad-threshold", default=VadOptions.threshold, show_default=True, type=click.FloatRange(0.05, 0.95),
                  help="Silero speech probability that opens a segment.")
    @click.option("--min-silence", default=VadOptions.min_silence_s, show_default=True, type=click.FloatRange(0.05, 5),
                  help="Seconds of silence that close a speech segment.")
    @click.option("--max-segment", default=20.0, show_default=True, type=click.FloatRange(1, 28),
                  help="Seconds after which an open segment is closed (at its quietest frame).")
    @click.option("--drain", default=30.0, show_default=True, type=click.FloatRange(0),
                  help="On SIGTERM, seconds to let open streams finish.")
    @functools.wraps(function)
    def wrapper(engine, max_streams, concurrency, threads, vad_threshold, min_silence, max_segment, drain, **kwargs):
        vad = VadOptions(threshold=vad_threshold, release=max(0.05, vad_threshold - 0.15), min_silence_s=min_silence)  # Silero's gap
        shared = dict(max_streams=max_streams, concurrency=concurrency, drain_s=drain,
                      stream=StreamOptions(vad=vad, max_segment_s=max_segment))
        options = function(shared=shared, **kwargs)
        try:
            run(engine, options, threads=threads)
        except (ManifestError, EngineError, AudioError, ValueError, OSError) as error:
            sys.exit(f"serve: {error}")
    return wrapper


@click.group(epilog=EXAMPLES)
def command() -> None:
    """Serve one engine to voice assistants (Wyoming: Home Assistant) and OpenAI-style apps (HTTP), with streaming
    and voice activity detection. One process can serve both: `wyoming ... --http HOST:PORT`."""


@command.command("wyoming", epilog=EXAMPLES)
@click.option("--uri", default="tcp://0.0.0.0:10300", show_default=True, help="Where to listen: tcp://HOST:PORT or unix://PATH.")
@click.option("--endpoint", type=click.FloatRange(0.1, 10), metavar="SECONDS",
              help="End an utterance by the server's VAD after SECONDS of silence following speech [default: at audio-stop].")
@click.option("--http", "http_address", metavar="HOST:PORT", help="Also serve the OpenAI-compatible API here.")
@click.option("--api-key", envvar="ASR_ENGINES_API_KEY", help="With --http: the bearer key it requires.")
@serving_options
def wyoming(shared: dict, uri: str, endpoint: float | None, http_address: str | None, api_key: str | None) -> ServeOptions:
    """Speech to text over Wyoming for ENGINE (its .json manifest)."""
    return ServeOptions(wyoming_uri=uri, endpoint_s=endpoint, http=host_port(http_address), api_key=api_key, **shared)


@command.command("http", epilog=EXAMPLES)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--api-key", envvar="ASR_ENGINES_API_KEY", help="Require `Authorization: Bearer KEY` [env ASR_ENGINES_API_KEY].")
@click.option("--max-upload-mb", default=25.0, show_default=True, type=click.FloatRange(0.01), help="The largest upload taken.")
@click.option("--wyoming", "wyoming_uri", metavar="URI", help="Also serve Wyoming here (tcp://HOST:PORT).")
@serving_options
def http(shared: dict, host: str, port: int, api_key: str | None, max_upload_mb: float, wyoming_uri: str | None) -> ServeOptions:
    """OpenAI-compatible /v1/audio/transcriptions for ENGINE (its .json manifest)."""
    return ServeOptions(http=(host, port), api_key=api_key, max_upload_bytes=int(max_upload_mb * 2**20),
                        wyoming_uri=wyoming_uri, **shared)
