"""`asr-engines serve` with the real clients over real sockets: the `wyoming` library's TCP client (the one Home
Assistant uses) and the official `openai` SDK. The engine is a random-weight Whisper (its text is gibberish but
deterministic), so each answer is checked against the streaming recognizer run in process on the same audio."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import openai
import pytest
from serving import RunningServer, free_port, http_get, http_post_form, pcm16, wav_bytes
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

from asr_engines import load_recognizer
from asr_engines.audio import SAMPLE_RATE
from asr_engines.serve.wyoming_server import pcm_samples

CHUNK = 1024  # samples per audio-chunk, as Home Assistant sends them


@pytest.fixture(scope="module")
def recognizer(tiny_whisper_engines):
    with load_recognizer(tiny_whisper_engines / "tiny-whisper-fp32.json") as loaded:
        yield loaded


@pytest.fixture(scope="module")
def server(recognizer):
    running = RunningServer(recognizer, max_streams=2)
    yield running
    running.close()


@pytest.fixture(scope="module")
def speech(utterances) -> np.ndarray:
    """An utterance, 1.5 s of silence, another, 1 s of silence: two segments."""
    gap = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
    return np.concatenate([utterances[0].load(), gap, utterances[1].load(), gap[:SAMPLE_RATE]])


def in_process(recognizer, samples: np.ndarray, sample_rate: int = SAMPLE_RATE):
    stream = recognizer.stream()
    stream.accept(samples, sample_rate)
    return stream.finish()


async def read_until(client, kind: str, timeout: float = 30) -> list:
    events = []
    while not events or events[-1].type != kind:
        event = await asyncio.wait_for(client.read_event(), timeout)
        assert event is not None, f"the server hung up before {kind}; got {[e.type for e in events]}"
        events.append(event)
    return events


async def send_audio(client, pcm: bytes, rate: int = SAMPLE_RATE, width: int = 2, channels: int = 1) -> None:
    step = CHUNK * width * channels
    for start in range(0, len(pcm), step):
        await client.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[start : start + step]).event())


def test_wyoming_home_assistant_sequence_and_streaming_events(server, recognizer, speech):
    expected = in_process(recognizer, np.frombuffer(pcm16(speech), "<i2"))
    assert len(expected.segments) == 2

    async def talk():
        async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
            await client.write_event(Describe().event())
            info = Info.from_event(await client.read_event())
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
            pcm = pcm16(speech)
            split = 2 * int(expected.segments[1].start * SAMPLE_RATE)  # the first segment is over by here
            await send_audio(client, pcm[:split])
            early = await read_until(client, "transcript-chunk")  # while audio still arrives
            await send_audio(client, pcm[split:])
            await client.write_event(AudioStop().event())
            return info, early + await read_until(client, "transcript-stop")

    info, events = asyncio.run(talk())
    program = info.asr[0]
    assert program.supports_transcript_streaming and program.models[0].name == recognizer.name
    assert program.models[0].languages == ["en"]
    kinds = [event.type for event in events]
    assert kinds[0] == "transcript-start" and kinds[-2:] == ["transcript", "transcript-stop"]
    assert events[1].data["text"] == expected.segments[0].text
    chunks = "".join(event.data["text"] for event in events if event.type == "transcript-chunk")
    assert chunks == events[-2].data["text"] == expected.text


def test_wyoming_takes_any_rate_width_and_channels(server, recognizer, utterances):
    import soxr

    audio = soxr.resample(utterances[0].load(), SAMPLE_RATE, 44_100).astype(np.float32)
    for width, channels in [(3, 2), (1, 1), (4, 1)]:
        scale = 2 ** (8 * width - 1)
        ints = np.clip(np.round(audio * scale), -scale, scale - 1).astype(np.int64)
        frames = np.repeat(ints[:, None], channels, axis=1).reshape(-1)
        if width == 1:
            pcm = (frames + 128).astype(np.uint8).tobytes()
        else:
            pcm = b"".join(int(v).to_bytes(width, "little", signed=True) for v in frames) if width == 3 else frames.astype("<i4").tobytes()

        async def talk(pcm: bytes, width: int, channels: int):
            async with AsyncTcpClient("127.0.0.1", server.wyoming_port) as client:
                await client.write_event(AudioStart(rate=44_100, width=width, channels=channels).event())
                await send_audio(client, pcm, 44_100, width, channels)
                await client.write_event(AudioStop().event())
                return (await read_until(client, "transcript"))[-1].data["text"]

        expected = in_process(recognizer, pcm_samples(pcm, width, channels), 44_100).text
        assert expected and asyncio.run(talk(pcm, width, channels)) == expected, f"{width}-byte samples, {channels} channel(s)"


def test_pcm_samples_reads_each_width():
    assert pcm_samples(np.array([-32768, 16384], "<i2").tobytes(), 2, 1).tolist() == [-1.0, 0.5]
    assert pcm_samples(bytes([0, 192]), 1, 1).tolist() == [-1.0, 0.5]
    int24 = (-2**23).to_bytes(3, "little", signed=True) + (2**22).to_bytes(3, "little", signed=True)
    assert pcm_samples(int24, 3, 1).tolist() == [-1.0, 0.5]
    assert pcm_samples(np.array([1000, 3000], "<i2").tobytes(), 2, 2).tolist() == [2000 / 32768]


def test_wyoming_busy_bad_audio_disconnect_and_endpointing(recognizer, utterances):
    running = RunningServer(recognizer, max_streams=1, endpoint_s=0.6)
    try:
        async def talk():
            holder = AsyncTcpClient("127.0.0.1", running.wyoming_port)
            await holder.connect()
            await holder.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
            await send_audio(holder, pcm16(np.zeros(CHUNK, np.float32)))
            async with AsyncTcpClient("127.0.0.1", running.wyoming_port) as other:
                await asyncio.sleep(0.2)
                await other.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
                busy = await read_until(other, "error")
                await holder.disconnect()  # mid-stream: its stream must be freed
                for _ in range(100):
                    if json.loads(http_get(f"{running.base_url}/health")[1])["active_streams"] == 0:
                        break
                    await asyncio.sleep(0.05)
                await other.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
                await other.write_event(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=b"\x00\x01\x02").event())
                bad = await read_until(other, "error")
                await other.write_event(AudioStop().event())
                # server-side endpointing: the transcript comes after the silence, with no audio-stop sent
                await other.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
                await send_audio(other, pcm16(np.concatenate([utterances[0].load(), np.zeros(SAMPLE_RATE, np.float32)])))
                endpointed = await read_until(other, "transcript-stop")
                await other.write_event(AudioStop().event())
                return busy[-1], bad[-1], endpointed

        busy, bad, endpointed = asyncio.run(talk())
        assert busy.data["code"] == "busy" and "max-streams" in busy.data["text"]
        assert bad.data["code"] == "bad-audio" and "whole frames" in bad.data["text"]
        assert [e.type for e in endpointed][-2:] == ["transcript", "transcript-stop"]
        assert endpointed[-2].data["text"] == in_process(recognizer, np.frombuffer(pcm16(utterances[0].load()), "<i2")).text
    finally:
        running.close()


def test_openai_sdk_every_response_format_and_stream(server, recognizer, speech):
    expected = in_process(recognizer, speech)
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    upload = ("speech.wav", wav_bytes(speech))
    assert [model.id for model in client.models.list()] == [recognizer.name]
    create = client.audio.transcriptions.create
    assert create(model="whisper-1", file=upload).text == expected.text
    assert create(model=recognizer.name, file=upload, response_format="text").strip() == expected.text
    verbose = create(model=recognizer.name, file=upload, response_format="verbose_json", timestamp_granularities=["segment"])
    assert [(s.start, s.end, s.text) for s in verbose.segments] == [(s.start, s.end, s.text) for s in expected.segments]
    assert verbose.language == "en" and verbose.duration == pytest.approx(len(speech) / SAMPLE_RATE, abs=1e-3)
    srt = create(model=recognizer.name, file=upload, response_format="srt")
    assert srt.startswith("1\n00:00:00,") and "\n2\n" in srt and expected.segments[1].text in srt
    vtt = create(model=recognizer.name, file=upload, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.") and expected.segments[0].text in vtt
    events = list(create(model=recognizer.name, file=upload, stream=True))
    assert [e.type for e in events] == ["transcript.text.delta"] * 2 + ["transcript.text.done"]
    assert "".join(e.delta for e in events[:-1]) == events[-1].text == expected.text


def test_openai_sdk_gets_one_clear_error_for_each_fault(server, recognizer, speech):
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    create = client.audio.transcriptions.create
    upload = ("speech.wav", wav_bytes(speech[:SAMPLE_RATE]))
    faults = [
        (dict(file=("notes.wav", b"this is not audio")), "notes.wav: unreadable audio"),
        (dict(file=upload, response_format="xml"), "response_format must be one of"),
        (dict(file=upload, language="de"), "language 'de' is not served"),
        (dict(file=upload, timestamp_granularities=["word"]), "only `segment`"),
        (dict(file=upload, temperature=3), "temperature must be"),
    ]
    for arguments, message in faults:
        with pytest.raises(openai.BadRequestError, match=message):
            create(model="whisper-1", **arguments)
    status, body = http_post_form(f"{server.base_url}/v1/audio/transcriptions", {"model": "whisper-1"})
    assert status == 400 and "`file`" in json.loads(body)["error"]["message"]


def test_api_key_upload_limit_and_busy(recognizer, speech):
    running = RunningServer(recognizer, max_streams=1, api_key="sesame", max_upload_bytes=100_000)
    try:
        url = f"{running.base_url}/v1"
        with pytest.raises(openai.AuthenticationError, match="API key"):
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
        client = openai.OpenAI(base_url=url, api_key="sesame", max_retries=0)
        with pytest.raises(openai.APIStatusError, match="at most 100000") as too_large:
            client.audio.transcriptions.create(model="whisper-1", file=("long.wav", wav_bytes(speech)))
        assert too_large.value.status_code == 413

        async def hold_the_only_stream():
            async with AsyncTcpClient("127.0.0.1", running.wyoming_port) as holder:
                await holder.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
                await send_audio(holder, pcm16(np.zeros(CHUNK, np.float32)))
                await asyncio.sleep(0.3)
                with pytest.raises(openai.APIStatusError, match="busy") as busy:
                    await asyncio.to_thread(client.audio.transcriptions.create, model="whisper-1",
                                            file=("short.wav", wav_bytes(speech[:SAMPLE_RATE])))
                return busy.value.status_code

        assert asyncio.run(hold_the_only_stream()) == 503
        metrics = http_get(f"{running.base_url}/metrics")[1]
        assert 'asr_errors_total{kind="busy",protocol="http"} 1.0' in metrics
    finally:
        running.close()


def test_metrics_and_health(server, speech):
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)
    client.audio.transcriptions.create(model="whisper-1", file=("s.wav", wav_bytes(speech[: 3 * SAMPLE_RATE])))
    assert json.loads(http_get(f"{server.base_url}/health")[1])["status"] == "ok"
    metrics = http_get(f"{server.base_url}/metrics")[1]
    for line in ('asr_requests_total{outcome="ok",protocol="http"}', 'asr_final_latency_seconds_bucket{le="1.0",protocol="http"}',
                 "asr_audio_seconds_total", "asr_queue_depth", "asr_active_streams", "asr_decode_seconds_count"):
        assert line in metrics


def test_sigterm_lets_the_request_in_flight_finish(tiny_whisper_engines, speech):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "asr_engines", "serve", "http", str(tiny_whisper_engines / "tiny-whisper-fp32.json"),
                               "--port", str(port)], stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                if http_get(f"http://127.0.0.1:{port}/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        answer = {}
        upload = ("s.wav", wav_bytes(np.concatenate([speech] * 3)))
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0, timeout=60)
        request = threading.Thread(target=lambda: answer.update(text=client.audio.transcriptions.create(model="m", file=upload).text))
        request.start()
        for _ in range(100):  # until the request is being decoded
            if "asr_active_streams 1.0" in http_get(f"http://127.0.0.1:{port}/metrics")[1]:
                break
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGTERM)
        request.join(60)
        assert answer.get("text"), "the request in flight was dropped"
        assert server.wait(30) == 0
    finally:
        server.kill()
        server.wait()
    assert "stopping: 1 stream(s) open" in server.stderr.read()


def test_serve_refuses_a_missing_engine_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "asr_engines", "serve", "http", str(tmp_path / "none.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "serve:" in result.stderr
