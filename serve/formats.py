"""A transcript in the response formats of OpenAI's /v1/audio/transcriptions."""

from __future__ import annotations

from asr_engines.runtime.streaming import Segment, Transcript

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def _clock(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    return f"{hours:02d}:{minutes:02d}:{millis // 1000:02d}{separator}{millis % 1000:03d}"


def srt(segments: tuple[Segment, ...]) -> str:
    return "".join(f"{index}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n\n" for index, s in enumerate(segments, 1))


def vtt(segments: tuple[Segment, ...]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n\n" for s in segments)


def verbose_json(transcript: Transcript, language: str) -> dict:
    """OpenAI's verbose form. Fields this runtime does not compute (token ids, log-probabilities, the no-speech
    probability: the VAD decides that before decoding) are neutral values, as whisper.cpp's server gives them."""
    return {
        "task": "transcribe", "language": language, "duration": transcript.duration, "text": transcript.text,
        "segments": [{"id": index, "seek": 0, "start": s.start, "end": s.end, "text": s.text, "tokens": [],
                      "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
                     for index, s in enumerate(transcript.segments)],
        "usage": {"type": "duration", "seconds": transcript.duration},
    }
