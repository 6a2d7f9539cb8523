"""OpenAI-compatible speech to text over HTTP (Starlette, served by uvicorn).

    POST /v1/audio/transcriptions   multipart: file, model, language, prompt, response_format (json, text, srt,
                                    vtt, verbose_json), timestamp_granularities[] (segment), temperature, stream
    GET  /v1/models                 the engine, by the name `model` takes
    GET  /health                    ok, or 503 while shutting down
    GET  /metrics                   Prometheus

`model` must be the engine's name, except that any name is taken while one engine is served (clients written
for OpenAI send `whisper-1`). `prompt` is accepted and not used (the engines decode without a text prompt).
`stream=true` answers server-sent events: `transcript.text.delta` as segments are committed, then
`transcript.text.done`. Errors are OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with 400
(bad audio, a wrong field), 401 (API key), 413 (too large) and 503 (busy).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

import numpy as np
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from asr_engines.audio import SAMPLE_RATE, AudioError, decode_audio
from asr_engines.runtime.streaming import Transcript
from asr_engines.serve import formats
from asr_engines.serve.scheduler import Busy, Scheduler

log = logging.getLogger(__name__)
PROTOCOL = "http"
STREAM_PIECE = SAMPLE_RATE  # samples per step when streaming an upload's transcript


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def _error(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    kind = {401: "authentication_error", 503: "server_error"}.get(status, "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status_code=status)


def create_app(scheduler: Scheduler, languages: list[str], api_key: str | None = None,
               max_upload_bytes: int = 25 * 2**20) -> Starlette:
    name = scheduler.recognizer.name
    metrics = scheduler.metrics

    def authorized(request: Request) -> bool:
        return api_key is None or request.headers.get("authorization", "") == f"Bearer {api_key}"

    async def read_form(request: Request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload_bytes:
            raise RequestError(413, f"the upload is {int(declared)} bytes; this server takes at most {max_upload_bytes}")
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > max_upload_bytes:
                raise RequestError(413, f"the upload is over {max_upload_bytes} bytes, the most this server takes")
        request._body = bytes(body)  # Starlette parses the form from the body read here
        try:
            return await request.form(max_files=1, max_fields=32)
        except Exception as error:  # Starlette's multipart errors have no common base outside HTTPException
            raise RequestError(400, f"the request is not a multipart form with a file: {error}") from None

    def field(form, key: str, allowed: tuple[str, ...] | None = None, default: str | None = None) -> str | None:
        value = form.get(key, default)
        if value is not None and not isinstance(value, str):
            raise RequestError(400, f"{key} must be text", key)
        if allowed and value not in allowed:
            raise RequestError(400, f"{key} must be one of {', '.join(allowed)}, not {value!r}", key)
        return value

    async def parse(request: Request) -> tuple[np.ndarray, dict]:
        form = await read_form(request)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestError(400, "a `file` part with the audio is required", "file")
        model = field(form, "model")
        if not model:
            raise RequestError(400, "`model` is required (GET /v1/models lists it)", "model")
        options = {
            "format": field(form, "response_format", formats.FORMATS, "json"),
            "language": field(form, "language") or languages[0],
            "stream": field(form, "stream", ("true", "false", "True", "False"), "false").lower() == "true",
        }
        if options["language"] not in languages:
            raise RequestError(400, f"language {options['language']!r} is not served; this model speaks {', '.join(languages)}",
                               "language")
        granularities = form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
        if set(granularities) - {"segment"}:
            raise RequestError(400, "timestamp_granularities: only `segment` (word timestamps are not computed)",
                               "timestamp_granularities[]")
        temperature = field(form, "temperature", default="0")
        try:
            if not 0 <= float(temperature) <= 1:
                raise ValueError
        except ValueError:
            raise RequestError(400, f"temperature must be a number within 0..1, not {temperature!r}", "temperature") from None
        data = await upload.read()
        try:
            audio = await scheduler.run(decode_audio, data, upload.filename or "file")
        except AudioError as error:
            raise RequestError(400, str(error), "file", "bad_audio") from None
        return audio, options

    def respond(transcript: Transcript, options: dict) -> Response:
        kind = options["format"]
        if kind == "json":
            return JSONResponse({"text": transcript.text, "usage": {"type": "duration", "seconds": transcript.duration}})
        if kind == "verbose_json":
            return JSONResponse(formats.verbose_json(transcript, options["language"]))
        if kind == "text":
            return PlainTextResponse(transcript.text + "\n")
        return PlainTextResponse(getattr(formats, kind)(transcript.segments), media_type="text/vtt" if kind == "vtt" else "text/plain")

    async def transcriptions(request: Request) -> Response:
        began = time.perf_counter()
        if not authorized(request):
            metrics.errors.labels(PROTOCOL, "unauthorized").inc()
            return _error(401, "a valid API key is required: Authorization: Bearer KEY", code="invalid_api_key")
        stack = contextlib.AsyncExitStack()
        try:
            audio, options = await parse(request)
            live = await stack.enter_async_context(scheduler.session(PROTOCOL))
        except RequestError as error:
            metrics.errors.labels(PROTOCOL, str(error.status)).inc()
            log.warning("http: %d %s", error.status, error)
            return _error(error.status, str(error), error.param, error.code)
        except Busy as error:
            return _error(503, str(error), code="busy")
        if options["stream"]:
            return StreamingResponse(stream_events(live, audio, stack, began), media_type="text/event-stream")
        async with stack:
            await live.accept(audio, SAMPLE_RATE)
            transcript = await live.finish()
        done(transcript, began, options["format"])
        return respond(transcript, options)

    async def stream_events(live, audio: np.ndarray, stack: contextlib.AsyncExitStack, began: float):
        async with stack:
            sent = ""
            for start in range(0, len(audio), STREAM_PIECE):
                await live.accept(audio[start : start + STREAM_PIECE], SAMPLE_RATE)
                if len(live.committed()) > len(sent):
                    yield _event({"type": "transcript.text.delta", "delta": live.committed()[len(sent):]})
                    sent = live.committed()
            transcript = await live.finish()
            if len(transcript.text) > len(sent):
                yield _event({"type": "transcript.text.delta", "delta": transcript.text[len(sent):]})
            yield _event({"type": "transcript.text.done", "text": transcript.text})
        done(transcript, began, "stream")

    def done(transcript: Transcript, began: float, kind: str) -> None:
        metrics.requests.labels(PROTOCOL, "ok").inc()
        metrics.audio_seconds.labels(PROTOCOL).inc(transcript.duration)
        metrics.final_latency.labels(PROTOCOL).observe(time.perf_counter() - began)
        log.info("http: %s, %.2f s of audio in %.0f ms, %d characters", kind, transcript.duration,
                 1000 * (time.perf_counter() - began), len(transcript.text))

    async def models(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "a valid API key is required: Authorization: Bearer KEY", code="invalid_api_key")
        return JSONResponse({"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "asr-engines"}]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "shutting down" if scheduler.closing else "ok", "model": name,
                             "active_streams": scheduler.active}, status_code=503 if scheduler.closing else 200)

    async def prometheus(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/v1/models", models), Route("/health", health), Route("/metrics", prometheus),
    ])


def _event(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"
