"""One recognizer shared by every connection: streams admitted up to a limit, their decoding run by a fixed
number of threads in turn.

Admission is per stream (a Wyoming utterance, an HTTP request): past `max_streams` open at once, or while the
server shuts down, a new one is refused with `Busy` (HTTP 503, a Wyoming `error`), never queued without bound.
Work already admitted is never refused: each stream has at most one job (accept, partial, finish) in flight,
so the queue in front of the decode threads is at most `max_streams` long, and memory is bounded by
`max_streams` streams (each holds at most one open segment or chunk: runtime/streaming.py). A stream's state
goes when its session ends, the client gone or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from asr_engines.runtime.recognizer import Recognizer
from asr_engines.runtime.streaming import Stream, StreamOptions, Transcript
from asr_engines.serve.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class Busy(RuntimeError):
    """No room for another stream now; the message says why."""


class Scheduler:
    def __init__(self, recognizer: Recognizer, metrics: Metrics, max_streams: int = 8, concurrency: int = 1,
                 options: StreamOptions | None = None):
        if max_streams < 1 or concurrency < 1:
            raise ValueError("max_streams and concurrency must be at least 1")
        if recognizer.backend == "tensorrt" and concurrency > 1:
            # a TensorRT engine has one execution context: its runs must not overlap
            log.warning("a TensorRT engine decodes one stream at a time: concurrency 1, not %d", concurrency)
            concurrency = 1
        self.recognizer, self.metrics = recognizer, metrics
        self.max_streams, self.options = max_streams, options or StreamOptions()
        self.active = 0
        self.closing = False
        self._queued = 0
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="decode")

    @contextlib.asynccontextmanager
    async def session(self, protocol: str, options: StreamOptions | None = None) -> AsyncIterator[LiveStream]:
        """A stream for one utterance or request; `Busy` when there is no room."""
        if self.closing:
            raise Busy("the server is shutting down")
        if self.active >= self.max_streams:
            self.metrics.errors.labels(protocol, "busy").inc()
            raise Busy(f"busy: {self.active} streams open, the most this server takes (--max-streams); try again")
        self.active += 1
        self.metrics.active_streams.set(self.active)
        try:
            yield LiveStream(self, self.recognizer.stream(options or self.options))
        finally:
            self.active -= 1
            self.metrics.active_streams.set(self.active)

    async def run(self, work: Callable[..., T], *args) -> T:
        """`work(*args)` on a decode thread; waits its turn behind the other streams' jobs."""
        self._queued += 1
        self.metrics.queue_depth.set(self._queued)

        def started() -> T:
            self._queued -= 1
            self.metrics.queue_depth.set(self._queued)
            began = time.perf_counter()
            try:
                return work(*args)
            finally:
                self.metrics.decode_seconds.observe(time.perf_counter() - began)

        return await asyncio.get_running_loop().run_in_executor(self._pool, started)

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new streams and wait for the open ones to end; False if some were still open at the timeout."""
        self.closing = True
        deadline = time.monotonic() + timeout_s
        while self.active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return not self.active

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class LiveStream:
    """A stream whose decoding runs on the scheduler's threads."""

    def __init__(self, scheduler: Scheduler, stream: Stream):
        self._scheduler, self.stream = scheduler, stream

    async def accept(self, samples: np.ndarray, sample_rate: int) -> None:
        await self._scheduler.run(self.stream.accept, samples, sample_rate)

    async def partial(self) -> str:
        return await self._scheduler.run(self.stream.partial)

    async def finish(self) -> Transcript:
        return await self._scheduler.run(self.stream.finish)

    def committed(self) -> str:
        return self.stream.committed()
