"""Speech to text over the Wyoming protocol (Home Assistant's), on the `wyoming` library.

Per connection, any number of utterances: `transcribe` (optional) → `audio-start` → `audio-chunk`… (any rate,
sample width and channel count) → `audio-stop`. While audio arrives, text the stream has committed goes out
as `transcript-start` then `transcript-chunk` events (appended pieces, never rewritten); at the end the rest as
a last chunk, then the plain `transcript` (what older clients, Home Assistant's pinned one among them, wait
for) and `transcript-stop`. With `endpoint_s` the server ends the utterance itself once that much silence
follows speech (the transcript then goes out before `audio-stop`; the audio after it is ignored).
A full server answers `error` (code `busy`), bad audio `error` (code `bad-audio`).
"""

from __future__ import annotations

import logging
import time

import numpy as np
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler

from asr_engines.audio import AudioError
from asr_engines.serve.scheduler import Busy, LiveStream, Scheduler

log = logging.getLogger(__name__)
PROTOCOL = "wyoming"


def pcm_samples(data: bytes, width: int, channels: int) -> np.ndarray:
    """Little-endian integer PCM (8-bit unsigned, 16/24/32-bit signed), interleaved channels → float32 mono."""
    if width not in (1, 2, 3, 4) or channels < 1 or len(data) % (width * channels):
        raise AudioError(f"audio-chunk: {len(data)} bytes are not whole frames of {channels} channel(s) x {width} byte(s)")
    if width == 1:
        samples = (np.frombuffer(data, np.uint8).astype(np.float32) - 128) / 128
    elif width == 3:
        padded = np.zeros((len(data) // 3, 4), np.uint8)
        padded[:, 1:] = np.frombuffer(data, np.uint8).reshape(-1, 3)
        samples = padded.view("<i4").reshape(-1).astype(np.float32) / 2**31
    else:
        samples = np.frombuffer(data, {2: "<i2", 4: "<i4"}[width]).astype(np.float32) / 2 ** (8 * width - 1)
    return samples.reshape(-1, channels).mean(axis=1)


def describe(scheduler: Scheduler, languages: list[str], version: str) -> Info:
    attribution = Attribution(name="asr-engines", url="https://github.com/asr-engines/asr-engines")
    recognizer = scheduler.recognizer
    model = AsrModel(name=recognizer.name, attribution=attribution, installed=True, version=version, languages=languages,
                     description=f"{recognizer.manifest.model} {recognizer.precision} on {recognizer.backend} ({recognizer.device})")
    return Info(asr=[AsrProgram(name="asr-engines", attribution=attribution, installed=True, version=version,
                                description="FP32/FP16/INT8 engines with streaming and voice activity detection",
                                models=[model], supports_transcript_streaming=True, requires_external_vad=False)])


class WyomingHandler(AsyncEventHandler):
    """One client connection."""

    def __init__(self, reader, writer, scheduler: Scheduler, info: Info, endpoint_s: float | None):
        super().__init__(reader, writer)
        self._scheduler, self._info, self._endpoint_s = scheduler, info, endpoint_s
        self._session = None  # the scheduler's context for the utterance in progress
        self._stream: LiveStream | None = None
        self._sent = ""  # committed text already sent as transcript-chunk events
        self._ended = False  # this utterance was answered (endpointed, refused, or bad audio); wait for audio-stop
        self._began = 0.0

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self._info.event())
        elif Transcribe.is_type(event.type):
            language = Transcribe.from_event(event).language
            languages = self._info.asr[0].models[0].languages
            if language and language not in languages:
                await self.write_event(Error(f"language {language!r} not served; this model speaks {', '.join(languages)}",
                                             "unsupported-language").event())
        elif AudioStart.is_type(event.type):
            await self._end()
            await self._start()
        elif AudioChunk.is_type(event.type):
            await self._chunk(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            if self._stream is not None and not self._ended:
                await self._answer()
            await self._end()
        return True

    async def _start(self) -> None:
        self._ended, self._sent, self._began = False, "", time.perf_counter()
        self._session = self._scheduler.session(PROTOCOL)
        try:
            self._stream = await self._session.__aenter__()
        except Busy as error:
            self._session, self._ended = None, True
            log.warning("wyoming: refused a stream: %s", error)
            await self.write_event(Error(str(error), "busy").event())

    async def _chunk(self, chunk: AudioChunk) -> None:
        if self._stream is None and not self._ended:  # a client that sends no audio-start
            await self._start()
        if self._ended:
            return
        try:
            await self._stream.accept(pcm_samples(chunk.audio, chunk.width, chunk.channels), chunk.rate)
        except AudioError as error:
            self._scheduler.metrics.errors.labels(PROTOCOL, "bad-audio").inc()
            log.warning("wyoming: bad audio: %s", error)
            self._ended = True
            await self.write_event(Error(str(error), "bad-audio").event())
            return
        await self._send_committed()
        if self._endpoint_s is not None and self._stream.stream.endpoint(self._endpoint_s):
            await self._answer()

    async def _send_committed(self) -> None:
        committed = self._stream.committed()
        if len(committed) > len(self._sent):
            if not self._sent:
                await self.write_event(TranscriptStart().event())
            await self.write_event(TranscriptChunk(committed[len(self._sent):]).event())
            self._sent = committed

    async def _answer(self) -> None:
        stopped = time.perf_counter()
        transcript = await self._stream.finish()
        await self._send_committed()
        if not self._sent:
            await self.write_event(TranscriptStart().event())
        await self.write_event(Transcript(transcript.text).event())
        await self.write_event(TranscriptStop().event())
        self._ended = True
        metrics = self._scheduler.metrics
        metrics.requests.labels(PROTOCOL, "ok").inc()
        metrics.audio_seconds.labels(PROTOCOL).inc(transcript.duration)
        metrics.final_latency.labels(PROTOCOL).observe(time.perf_counter() - stopped)
        log.info("wyoming: %.2f s of audio, final %.0f ms after its end, %d characters", transcript.duration,
                 1000 * (time.perf_counter() - stopped), len(transcript.text))

    async def _end(self) -> None:
        """Free the utterance's stream (the client finished, started another, or went away)."""
        session, self._session, self._stream = self._session, None, None
        if session is not None:
            await session.__aexit__(None, None, None)

    async def disconnect(self) -> None:
        if self._stream is not None and not self._ended:
            log.info("wyoming: client left mid-stream; its stream is freed")
            self._scheduler.metrics.requests.labels(PROTOCOL, "disconnected").inc()
        await self._end()
