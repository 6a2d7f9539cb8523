"""The serving stage's entry: one engine loaded once, served over Wyoming, HTTP or both from one process.

SIGTERM or SIGINT: new streams are refused, the open ones finish (up to `drain_s`), then the listeners close
and the engine is freed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from asr_engines.runtime.backends import share_thread_pool
from asr_engines.runtime.recognizer import Recognizer, load_recognizer
from asr_engines.runtime.streaming import StreamOptions
from asr_engines.serve.metrics import Metrics
from asr_engines.serve.scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    wyoming_uri: str | None = None  # tcp://HOST:PORT
    http: tuple[str, int] | None = None  # (host, port)
    max_streams: int = 8
    concurrency: int = 1
    endpoint_s: float | None = None  # Wyoming: end an utterance after this much silence following speech
    api_key: str | None = None
    max_upload_bytes: int = 25 * 2**20
    drain_s: float = 30.0
    stream: StreamOptions = StreamOptions()


def languages_of(recognizer: Recognizer) -> list[str]:
    """The languages the engine transcribes, as codes: a multilingual Whisper's language tokens (`<|fr|>` -> `fr`);
    English otherwise (CTC vocabularies, Moonshine, English-only Whisper)."""
    return [token.strip("<|>") for token in recognizer.manifest.decoder.get("languages") or {}] or ["en"]


def package_version() -> str:
    try:
        return version("asr-engines")
    except PackageNotFoundError:
        return "0+unknown"


async def serve(recognizer: Recognizer, options: ServeOptions, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set); `ready` is set once every listener accepts connections."""
    if not (options.wyoming_uri or options.http):
        raise ValueError("nothing to serve: give a Wyoming URI, an HTTP address, or both")
    scheduler = Scheduler(recognizer, Metrics.create(), options.max_streams, options.concurrency, options.stream)
    languages = languages_of(recognizer)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests)
            loop.add_signal_handler(signum, stop.set)
    servers = []
    try:
        if options.wyoming_uri:
            servers.append(await _start_wyoming(scheduler, options, languages))
        if options.http:
            servers.append(await _start_http(scheduler, options, languages))
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping: %d stream(s) open, waiting up to %.0f s for them", scheduler.active, options.drain_s)
        if not await scheduler.drain(options.drain_s):
            log.warning("%d stream(s) still open after %.0f s; closing them", scheduler.active, options.drain_s)
    finally:
        for close in reversed(servers):
            await close()
        scheduler.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)


async def _start_wyoming(scheduler: Scheduler, options: ServeOptions, languages: list[str]):
    from functools import partial

    from wyoming.server import AsyncServer

    from asr_engines.serve.wyoming_server import WyomingHandler, describe

    server = AsyncServer.from_uri(options.wyoming_uri)
    info = describe(scheduler, languages, package_version())
    await server.start(partial(WyomingHandler, scheduler=scheduler, info=info, endpoint_s=options.endpoint_s))
    log.info("Wyoming speech-to-text on %s: %s", options.wyoming_uri, scheduler.recognizer.name)
    return server.stop


async def _start_http(scheduler: Scheduler, options: ServeOptions, languages: list[str]):
    import uvicorn

    from asr_engines.serve.http_server import create_app

    app = create_app(scheduler, languages, options.api_key, options.max_upload_bytes)
    host, port = options.http

    class QuietSignals(uvicorn.Server):
        """uvicorn without its own signal handlers: serve() handles SIGTERM for both protocols."""

        @contextlib.contextmanager
        def capture_signals(self):
            yield

    server = QuietSignals(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                                lifespan="off", timeout_graceful_shutdown=options.drain_s))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():  # uvicorn logs why (the port taken, ...) and exits
            raise OSError(f"cannot serve HTTP on {host}:{port} (is the port taken?)")
        await asyncio.sleep(0.02)
    log.info("OpenAI-compatible HTTP on http://%s:%d/v1: %s", host, port, scheduler.recognizer.name)

    async def close() -> None:
        server.should_exit = True
        await task

    return close


def run(engine: str | Path, options: ServeOptions, threads: int | None = None) -> None:
    """Load `engine` (its manifest) and serve it until stopped; ONNX Runtime engines on one shared thread pool."""
    share_thread_pool(threads)
    with load_recognizer(engine, threads=threads) as recognizer:
        asyncio.run(serve(recognizer, options))
