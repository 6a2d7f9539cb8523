"""Long recordings through a CTC model in overlapping chunks, as Hugging Face's ASR pipeline does it.

Each chunk is `chunk` samples; neighbouring chunks overlap by `stride` samples on each side, and the logits of
a chunk's overlap are dropped (the first chunk keeps its start, the last its end), so every frame comes from a
chunk where it had `stride` of context on both sides. `chunk` and `stride` should be multiples of the model's
frame hop (320 samples for wav2vec2: 20 s and 4 s are). The kept logits, concatenated, are decoded as one
sequence: a word across a chunk boundary comes out once. Memory and the engine's input length are bounded by
the chunk, whatever the recording's length (a TensorRT plan takes inputs up to its profile's maximum).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from asr_engines.audio import Samples


@dataclass(frozen=True)
class Span:
    """One chunk: samples [start, end), of which the first `left` and last `right` are context only."""

    start: int
    end: int
    left: int
    right: int


def chunk_spans(length: int, chunk: int, stride: int) -> Iterator[Span]:
    """The chunks covering `length` samples; one span covering it all when it fits in one chunk."""
    if not 0 <= 2 * stride < chunk:
        raise ValueError(f"the strides on both sides ({2 * stride} samples) must be shorter than the chunk ({chunk})")
    step = chunk - 2 * stride
    for start in range(0, max(length, 1), step):
        end = min(start + chunk, length)
        is_last = start + chunk >= length
        yield Span(start, end, 0 if start == 0 else stride, 0 if is_last else stride)
        if is_last:
            return


def chunked_logits(audio: Samples, logits_of: Callable[[np.ndarray], np.ndarray], chunk: int, stride: int) -> np.ndarray:
    """[frames, vocabulary] logits of a whole recording, from `logits_of(samples) -> [frames, vocabulary]` run
    chunk by chunk. Frame j of a chunk starting at sample s is frame s / hop + j of the recording (hop: samples
    per frame, 320 for wav2vec2), so each chunk keeps exactly the frames of its own share and the result has
    the whole-file run's frames, one for one. (The pipeline's rounded ratio loses a frame per chunk: a
    convolution over n samples gives (n - 400) // 320 + 1 frames, not n / 320.)"""
    kept, hop = [], None
    for span in chunk_spans(len(audio), chunk, stride):
        logits = logits_of(audio[span.start : span.end])
        hop = hop or max(int(round((span.end - span.start) / max(len(logits), 1))), 1)  # from the first, full chunk
        last = span.right == 0
        # a copy, not a view: a view keeps the engine's whole output alive, and ONNX Runtime's arena then grows
        # by a region now and then (docs/results/2026-12-02-onnxruntime-session.md)
        kept.append(np.array(logits[span.left // hop : len(logits) if last else (span.end - span.start - span.right) // hop]))
    return np.concatenate(kept)
