"""Shape ranges for every input of every graph: what a TensorRT optimization profile must know before it builds.

Optimum names the dynamic dimensions of the graphs it exports (`batch_size`, `sequence_length`,
`decoder_sequence_length`, `past_decoder_sequence_length`, `encoder_sequence_length`). Each name gets a
(min, opt, max) range per graph, from the dataset's durations and the model's config; a graph's profile is
then its inputs' shapes with every name replaced by its range. ONNX Runtime needs none of this.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.engines.assets import moonshine_decoder, whisper_decoder
from asr_engines.families import CTC, MOONSHINE_AUDIO_LENGTH, MOONSHINE_MAX_INPUT_S, MOONSHINE_MIN_SAMPLES, moonshine_frames
from asr_engines.onnx_io import onnx_io

Range = tuple[int, int, int]  # min, opt, max
#: Typical tokens per second of read English (Whisper's BPE: 3.85 on the 70 LibriSpeech references bundled here).
WHISPER_TOKENS_PER_S = 4.0


@dataclass(frozen=True)
class ShapeProfile:
    """min/opt/max shape per input name (one TensorRT optimization profile)."""

    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

    def opt(self, name: str) -> tuple[int, ...]:
        return self.shapes[name][1]

    def as_dict(self) -> dict:
        return {name: {"min": list(low), "opt": list(middle), "max": list(high)}
                for name, (low, middle, high) in self.shapes.items()}


def audio_range(durations_s: Sequence[float], min_s: float | None = None, opt_s: float | None = None,
                max_s: float | None = None) -> Range:
    """Samples covering the dataset: min = shortest, opt = median, max = longest rounded up to a whole
    second (flags override each). OPT is also the length the calibrator runs at."""
    if not durations_s and None in (min_s, opt_s, max_s):
        raise ValueError("no durations to derive a profile from; pass min/opt/max seconds")
    low = min_s if min_s is not None else min(durations_s)
    middle = opt_s if opt_s is not None else float(np.median(durations_s))
    high = max_s if max_s is not None else math.ceil(max(durations_s))
    if not 0 < low <= middle <= high:
        raise ValueError(f"profile needs 0 < min <= opt <= max seconds, got {low}, {middle}, {high}")
    return round(low * SAMPLE_RATE), round(middle * SAMPLE_RATE), round(high * SAMPLE_RATE)


def _ctc_ranges(part: str, export_dir: Path, durations_s: Sequence[float], audio_s: tuple) -> dict[str, Range]:
    """Up to the longest utterance or one chunk (recordings past it are read in chunks), whichever is longer."""
    low_s, opt_s, high_s = audio_s
    if high_s is None and durations_s:
        high_s = max(math.ceil(max(durations_s)), CTC.chunking["chunk_s"])
    return {"sequence_length": audio_range(durations_s, low_s, opt_s, high_s)}


def _whisper_ranges(part: str, export_dir: Path, durations_s: Sequence[float], audio_s: tuple) -> dict[str, Range]:
    """The encoder takes fixed 30 s windows; the first decoder takes the prompt; the cache grows to max_length."""
    settings = whisper_decoder(export_dir)
    prompt, max_length = len(settings["prompt"]), settings["max_length"]
    audio_frames = json.loads((export_dir / "config.json").read_text())["max_source_positions"]
    median_s = min(audio_range(durations_s, *audio_s)[1] / SAMPLE_RATE, 30.0)
    typical = prompt + round(median_s * WHISPER_TOKENS_PER_S)
    ranges = {"encoder_sequence_length": (audio_frames, audio_frames, audio_frames)}
    if part == "decoder":  # fed the prompt only: a longer range would size its logits buffer for 448 tokens
        ranges["decoder_sequence_length"] = (1, prompt, prompt)
    elif part == "decoder_with_past":
        ranges["decoder_sequence_length"] = (1, 1, 1)
        ranges["past_decoder_sequence_length"] = (1, min(typical, max_length - 1), max_length - 1)
    return ranges


def _moonshine_ranges(part: str, export_dir: Path, durations_s: Sequence[float], audio_s: tuple) -> dict[str, Range]:
    """The encoder takes the audio (up to one pass's longest, MOONSHINE_MAX_INPUT_S); the decoders take its output
    frames (`encoder_sequence_length` names those there) and the audio's mask, the first one the start token, the
    cache growing up to the tokens the longest input may be given."""
    low_s, opt_s, high_s = audio_s
    if high_s is None and durations_s:
        high_s = max(math.ceil(max(durations_s)), MOONSHINE_MAX_INPUT_S)
    low, middle, high = audio_range(durations_s, low_s, opt_s, high_s)
    low = max(low, MOONSHINE_MIN_SAMPLES)
    if part == "encoder":
        return {"encoder_sequence_length": (low, max(low, middle), max(low, high))}
    settings = moonshine_decoder(export_dir)
    most = min(settings["max_length"] - 1, math.ceil(high / SAMPLE_RATE * settings["max_tokens_per_s"]))
    audio = (low, max(low, middle), max(low, high))
    ranges = {"encoder_sequence_length": tuple(moonshine_frames(samples) for samples in audio), MOONSHINE_AUDIO_LENGTH: audio,
              "decoder_sequence_length": (1, 1, 1)}
    if part == "decoder_with_past":
        ranges["past_decoder_sequence_length"] = (1, min(most, 1 + round(middle / SAMPLE_RATE * WHISPER_TOKENS_PER_S)), most)
    return ranges


#: model family -> the ranges of its graphs' named dimensions. A new family is a new line here.
FAMILY_RANGES: dict[str, Callable[..., dict[str, Range]]] = {"ctc": _ctc_ranges, "whisper": _whisper_ranges,
                                                              "moonshine": _moonshine_ranges}


def dimension_ranges(family: str, part: str, export_dir: Path, durations_s: Sequence[float] = (),
                     audio_s: tuple[float | None, float | None, float | None] = (None, None, None),
                     max_batch: int = 1) -> dict[str, Range]:
    """(min, opt, max) of every named dimension of graph `part` of a model of `family` exported in `export_dir`."""
    if max_batch < 1:
        raise ValueError(f"max batch must be at least 1, not {max_batch}")
    if family not in FAMILY_RANGES:
        raise ValueError(f"no shape ranges for model family {family!r}")
    return {"batch_size": (1, 1, max_batch), **FAMILY_RANGES[family](part, Path(export_dir), durations_s, audio_s)}


def shape_profile(inputs: Sequence[dict], ranges: dict[str, Range]) -> ShapeProfile:
    """The profile of a graph whose inputs are `[{"name", "shape"}]` (ints, or names of dynamic dims)."""
    shapes = {}
    for tensor in inputs:
        dims = []
        for dim in tensor["shape"]:
            if isinstance(dim, int) and dim > 0:
                dims.append((dim, dim, dim))
            elif dim in ranges:
                dims.append(ranges[dim])
            else:
                raise ValueError(f"input {tensor['name']!r} has a dimension {dim!r} with no range "
                                 f"(known: {', '.join(sorted(ranges))}); name it in engines/profiles.py")
        shapes[tensor["name"]] = tuple(tuple(dim[index] for dim in dims) for index in range(3))
    return ShapeProfile(shapes)


def graph_profile(onnx_path: Path, ranges: dict[str, Range]) -> ShapeProfile:
    """The profile of the ONNX graph at `onnx_path`, its named dimensions given `ranges`."""
    return shape_profile(onnx_io(onnx_path)["inputs"], ranges)
