"""The servers' Prometheus metrics (GET /metrics), in a registry of their own per server."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: seconds; the latency goals (docs/streaming.md) sit between 0.25 and 1 s
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    audio_seconds: Counter
    final_latency: Histogram
    decode_seconds: Histogram
    errors: Counter
    queue_depth: Gauge
    active_streams: Gauge

    @classmethod
    def create(cls) -> Metrics:
        registry = CollectorRegistry()
        return cls(
            registry,
            Counter("asr_requests", "Utterances and requests finished", ["protocol", "outcome"], registry=registry),
            Counter("asr_audio_seconds", "Seconds of audio transcribed", ["protocol"], registry=registry),
            Histogram("asr_final_latency_seconds", "End of audio to final transcript", ["protocol"],
                      buckets=LATENCY_BUCKETS, registry=registry),
            Histogram("asr_decode_seconds", "One job on a decode thread (accept, partial, finish)",
                      buckets=LATENCY_BUCKETS, registry=registry),
            Counter("asr_errors", "Requests refused or failed, by kind", ["protocol", "kind"], registry=registry),
            Gauge("asr_queue_depth", "Jobs waiting for a decode thread", registry=registry),
            Gauge("asr_active_streams", "Streams open now", registry=registry),
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
