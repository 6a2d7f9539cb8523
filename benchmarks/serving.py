"""Serving over Wyoming, as Home Assistant talks to it: our engines against wyoming-faster-whisper, through the
same client, each server in its own process, one after another in one run.

    .venv/bin/python -m benchmarks.serving ENGINE.json... [--peer-python PY --peer-model CT2_DIR] [--limit N]

The peer runs from its own environment (`python3 -m venv peer && peer/bin/pip install wyoming-faster-whisper==3.8.1`)
on a CTranslate2 int8 conversion of the same weights, greedy (--beam-size 1), on the same two CPU threads.
Every client speaks at real-time pace: 1,024-sample chunks every 64 ms, then 1 s of silence, then audio-stop;
one connection per utterance (as Home Assistant does). Measured per system:

- `stop p50/p95`: audio-stop -> transcript, one stream, the first `--latency-utterances` utterances;
- `vad p50/p95`: end of the utterance's audio -> transcript with the server's VAD endpointing (ours `--endpoint`,
  the peer's `--vad-endpointing`, both 0.5 s), no audio-stop sent until the transcript;
- `WER`: all utterances streamed by 4 clients at once; `offline`: the same engine's `transcribe` (ours);
- `streams`: the most concurrent real-time clients (ladder 1, 2, 4, 8, 12, 16, 24) whose audio-stop -> transcript
  p95 stays <= 1 s; `RSS idle` (after one utterance) and `MB/stream`: peak RSS at the largest level tried over
  the peak at one stream, per added stream (the first utterances grow ONNX Runtime's arenas once, not per stream);
- `partial`: ours in process, seconds from the first speech the VAD hears to the first non-empty partial.
The load average before and after each system is printed beside its row.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe

from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import DEFAULT_DATASET, load_dataset
from asr_engines.measure.wer import corpus_wer

CHUNK, PACE_S = 1024, 0.064
LADDER = (1, 2, 4, 8, 12, 16, 24)
LADDER_AUDIO_S = 16.0  # audio each client streams per ladder level
P95_GOAL_S = 1.0


@dataclass
class Row:
    name: str
    stop: list[float] = field(default_factory=list)
    vad: list[float] = field(default_factory=list)
    wer: float = float("nan")
    offline_wer: float = float("nan")
    streams: int = 0
    rss_idle_mb: float = 0.0
    mb_per_stream: float = float("nan")
    partial: list[float] = field(default_factory=list)
    load: str = ""


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


async def utterance(port: int, audio: np.ndarray, wait_for_endpoint: bool = False) -> tuple[str, float]:
    """Stream one utterance at real-time pace, 1 s of silence after it; (text, latency). Latency: audio-stop ->
    transcript, or with `wait_for_endpoint` the end of the utterance's own audio -> transcript (no audio-stop
    until it comes)."""
    pcm = pcm16(np.concatenate([audio, np.zeros(SAMPLE_RATE, np.float32)]))
    speech_bytes = 2 * len(audio)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
        answered: dict = {}

        async def read() -> None:
            while True:
                event = await client.read_event()
                if event is None:
                    return
                if event.type == "transcript":
                    answered.update(text=event.data["text"], at=time.perf_counter())
                    return

        reader = asyncio.create_task(read())
        began, speech_end = time.perf_counter(), None
        for index, start in enumerate(range(0, len(pcm), 2 * CHUNK)):
            await asyncio.sleep(max(0.0, began + index * PACE_S - time.perf_counter()))
            await client.write_event(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=pcm[start : start + 2 * CHUNK]).event())
            if speech_end is None and start + 2 * CHUNK >= speech_bytes:
                speech_end = time.perf_counter()
            if wait_for_endpoint and answered:
                break
        stopped = time.perf_counter()
        if not wait_for_endpoint:
            await client.write_event(AudioStop().event())
        await asyncio.wait_for(reader, 60)
        if wait_for_endpoint:
            await client.write_event(AudioStop().event())
        return answered.get("text", ""), answered.get("at", float("inf")) - (speech_end if wait_for_endpoint else stopped)


async def clients(port: int, audios: list[list[np.ndarray]]) -> list[tuple[str, float]]:
    """Each list of utterances streamed by its own client, all clients at once; results in the order given."""
    async def one(queue: list[np.ndarray]) -> list[tuple[str, float]]:
        return [await utterance(port, audio) for audio in queue]

    results = await asyncio.gather(*(one(queue) for queue in audios))
    return [result for per_client in results for result in per_client]


class Server:
    """A server process; its RSS sampled while it runs."""

    def __init__(self, command: list[str], port: int):
        self.port = port
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
        self.peak_kb, self._sampling = 0, True
        deadline = time.monotonic() + 120
        while not asyncio.run(self._answers()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.process.stderr.read()[-2000:]}")
            time.sleep(0.3)
        threading.Thread(target=self._sample, daemon=True).start()

    async def _answers(self) -> bool:
        try:
            async with AsyncTcpClient("127.0.0.1", self.port) as client:
                await client.write_event(Describe().event())
                return (await asyncio.wait_for(client.read_event(), 5)) is not None
        except OSError:
            return False

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def _sample(self) -> None:
        while self._sampling and self.process.poll() is None:
            self.peak_kb = max(self.peak_kb, self.rss_kb())
            time.sleep(0.1)

    def close(self) -> None:
        self._sampling = False
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def measure(name: str, command_for, audios: list[np.ndarray], references: list[str], args) -> Row:
    """command_for(port, endpoint_s) -> the server's command line."""
    row = Row(name, load=load())
    port = free_port()
    server = Server(command_for(port, None), port)
    try:
        asyncio.run(utterance(port, audios[0]))  # warm-up (the peer loads its model on first use)
        row.rss_idle_mb = server.rss_kb() / 1024
        row.stop = [latency for _, latency in asyncio.run(clients(port, [audios[: args.latency_utterances]]))]
        finals = asyncio.run(clients(port, [audios[index::4] for index in range(4)]))
        order = [index for start in range(4) for index in range(start, len(audios), 4)]
        row.wer = corpus_wer([references[i] for i in order], [text for text, _ in finals]).wer
        peaks = {}
        for level in args.ladder:
            queues = [_audio_for(audios, offset=level_client * 7, seconds=LADDER_AUDIO_S) for level_client in range(level)]
            server.peak_kb = server.rss_kb()
            latencies = [latency for _, latency in asyncio.run(clients(port, queues))]
            peaks[level] = server.peak_kb / 1024
            p95 = float(np.percentile(latencies, 95))
            print(f"  {name}: {level} streams, audio-stop -> transcript p95 {p95:.3f} s, peak RSS {server.peak_kb / 1024:.0f} MB",
                  flush=True)
            if len(peaks) > 1:
                row.mb_per_stream = (peaks[level] - peaks[min(peaks)]) / (level - min(peaks))
            if p95 > P95_GOAL_S:
                break
            row.streams = level
    finally:
        server.close()
    port = free_port()
    server = Server(command_for(port, args.endpoint), port)
    try:
        asyncio.run(utterance(port, audios[0]))
        row.vad = [asyncio.run(utterance(port, audio, wait_for_endpoint=True))[1] for audio in audios[: args.vad_utterances]]
    finally:
        server.close()
    row.load += f" -> {load()}"
    return row


def _audio_for(audios: list[np.ndarray], offset: int, seconds: float) -> list[np.ndarray]:
    queue, total, index = [], 0.0, offset
    while total < seconds:
        queue.append(audios[index % len(audios)])
        total += len(queue[-1]) / SAMPLE_RATE + 1
        index += 1
    return queue


def ours(engine: str, args, audios: list[np.ndarray], references: list[str]) -> Row:
    from asr_engines import load_recognizer

    def command_for(port: int, endpoint_s: float | None) -> list[str]:
        command = [sys.executable, "-m", "asr_engines", "serve", "wyoming", engine, "--uri", f"tcp://127.0.0.1:{port}",
                   "--max-streams", "64", "--threads", str(args.threads)]
        return command + (["--endpoint", str(endpoint_s)] if endpoint_s else [])

    row = measure(Path(engine).stem, command_for, audios, references, args)
    with load_recognizer(engine, threads=args.threads) as recognizer:
        row.offline_wer = corpus_wer(references, [recognizer.transcribe(audio) for audio in audios]).wer
        for audio in audios[: args.partial_utterances]:
            row.partial.append(first_partial_s(recognizer, audio))
    return row


def first_partial_s(recognizer, audio: np.ndarray) -> float:
    """Real-time pace in process: seconds from the first speech the VAD heard to the first non-empty partial."""
    stream, began = recognizer.stream(), time.perf_counter()
    for index, start in enumerate(range(0, len(audio), CHUNK)):
        time.sleep(max(0.0, began + index * PACE_S - time.perf_counter()))
        stream.accept(audio[start : start + CHUNK])
        if stream.partial():
            heard = stream.segments[0].start if stream.segments else stream.segmenter.open_start / SAMPLE_RATE
            stream.finish()
            return time.perf_counter() - (began + heard)
    stream.finish()
    return float("nan")


def peer(args, audios: list[np.ndarray], references: list[str]) -> Row:
    data_dir = tempfile.mkdtemp(prefix="peer-")

    def command_for(port: int, endpoint_s: float | None) -> list[str]:
        command = [args.peer_python, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{port}", "--model",
                   str(args.peer_model), "--data-dir", data_dir, "--download-dir", data_dir, "--local-files-only",
                   "--device", "cpu", "--compute-type", "int8", "--beam-size", "1", "--language", "en",
                   "--cpu-threads", str(args.threads)]
        return command + (["--vad-endpointing", str(endpoint_s)] if endpoint_s else [])

    return measure("wyoming-faster-whisper ct2 int8", command_for, audios, references, args)


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{np.percentile(values, 50):.3f}/{np.percentile(values, 95):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engines", nargs="*", help="our engines' manifests")
    parser.add_argument("--peer-python", help="python of an environment with wyoming-faster-whisper")
    parser.add_argument("--peer-model", type=Path, help="CTranslate2 int8 conversion of the same Whisper weights")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, help="first N utterances only")
    parser.add_argument("--latency-utterances", type=int, default=10)
    parser.add_argument("--vad-utterances", type=int, default=6)
    parser.add_argument("--partial-utterances", type=int, default=5)
    parser.add_argument("--endpoint", type=float, default=0.5)
    parser.add_argument("--ladder", type=int, nargs="+", default=LADDER, help="concurrent clients to try, rising")
    args = parser.parse_args()
    dataset = load_dataset(DEFAULT_DATASET)[: args.limit]
    audios, references = [u.load() for u in dataset], [u.text for u in dataset]
    print(f"{len(audios)} utterances, {sum(map(len, audios)) / SAMPLE_RATE:.0f} s; load average {load()}", flush=True)
    rows = [ours(engine, args, audios, references) for engine in args.engines]
    if args.peer_python and args.peer_model:
        rows.append(peer(args, audios, references))
    print(f"\n{'system':44} {'stop p50/p95':>13} {'vad p50/p95':>13} {'partial p50/p95':>15} {'WER':>6} {'offline':>7} "
          f"{'streams':>7} {'RSS idle':>8} {'MB/stream':>9}  load before -> after")
    for row in rows:
        print(f"{row.name:44} {percentiles(row.stop):>13} {percentiles(row.vad):>13} {percentiles(row.partial):>15} "
              f"{row.wer:6.2f} {row.offline_wer:7.2f} {row.streams:7d} {row.rss_idle_mb:8.0f} {row.mb_per_stream:9.1f}  {row.load}")
    if rows and args.peer_python:
        best = min(rows[:-1], key=lambda row: np.percentile(row.stop, 95))
        peer_row = rows[-1]
        print(f"ratio stop_p95 ours/peer={np.percentile(best.stop, 95) / np.percentile(peer_row.stop, 95):.2f} "
              f"streams ours/peer={max(r.streams for r in rows[:-1])}/{peer_row.streams}")


if __name__ == "__main__":
    main()
