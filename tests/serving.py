"""A server of `asr-engines serve` running in a thread of the test process, on free localhost ports, for tests
that talk to it with real clients over real sockets."""

from __future__ import annotations

import asyncio
import io
import socket
import threading

import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.serve.app import ServeOptions, serve


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunningServer:
    """Serves `recognizer` over Wyoming and HTTP until `close()`."""

    def __init__(self, recognizer, **options):
        self.wyoming_port, self.http_port = free_port(), free_port()
        self.options = ServeOptions(wyoming_uri=f"tcp://127.0.0.1:{self.wyoming_port}", http=("127.0.0.1", self.http_port),
                                    drain_s=5, **options)
        self._recognizer = recognizer
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._started.wait(30) or self._error:
            raise RuntimeError(f"the server did not start: {self._error}")

    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._stop, ready = asyncio.get_running_loop(), asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(serve(self._recognizer, self.options, ready, self._stop))
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            self._started.set()
            await task

        try:
            asyncio.run(main())
        except BaseException as error:  # reported by the constructor or close()
            self._error = error
            self._started.set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the server did not stop"
        if self._error:
            raise self._error


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET (urllib: no HTTP client beyond the SDK's)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def http_post_form(url: str, fields: dict) -> tuple[int, str]:
    import urllib.error
    import urllib.parse
    import urllib.request

    try:
        with urllib.request.urlopen(url, data=urllib.parse.urlencode(fields).encode(), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wav_bytes(audio: np.ndarray) -> bytes:
    """A float32 WAV of `audio` (read back exactly)."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()
