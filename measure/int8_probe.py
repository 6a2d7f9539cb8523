"""The WER probe the INT8 budget asks (engines/int8_budget.py): an engine made of candidate graphs, transcribing
the utterances of the calibration dataset the calibration stream did not use, clean and with its noise.

It lives here, where the runtime and WER meet; `asr-engines build` hands it to the build.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asr_engines.calibration.datasets import Utterance, load_dataset
from asr_engines.calibration.noise import NoiseMixer, noisy_draw, parse_noise
from asr_engines.calibration.stream import CalibrationStream
from asr_engines.engines.assets import ExportedModel
from asr_engines.engines.int8.budget import WerProbe
from asr_engines.engines.int8.quantize import quantize_dynamic_int8
from asr_engines.manifest import EngineManifest
from asr_engines.measure.wer import corpus_wer
from asr_engines.runtime.backends import load_engine
from asr_engines.runtime.recognizer import RECOGNIZERS, Recognizer, RecognizerOptions
from asr_engines.variants import Variant


def held_out_probe(model: ExportedModel, stream: CalibrationStream, limit: int = 40, threads: int | None = None,
                   noise_draws: int = 3) -> WerProbe:
    """A probe over at most `limit` held-out utterances of the stream's dataset, noisy with the stream's noise
    (`noise_draws` seeded draws pooled into one WER, the same draws for every engine compared: one draw of 38
    utterances moved tiny.en's int8-vs-fp32 difference by 2 points). The graphs that take no calibration
    (Whisper's decoders) are as the int8 engine builds them: int8 weights, activations quantized per call."""
    used = set(stream.description["ids"])
    utterances = [utterance for utterance in load_dataset(stream.description["dataset"]) if utterance.id not in used][:limit]
    if not utterances:
        raise ValueError("the calibration stream used every utterance of its dataset: none is left to judge the int8 engine on")
    audio = [utterance.load() for utterance in utterances]
    references = [utterance.text for utterance in utterances]
    noisy = noisy_copies(utterances, audio, stream.description["noise"], stream.description["seed"], noise_draws)
    def graph(part, files: dict[str, Path] | None) -> tuple[Path, Variant]:
        if files is None:
            return model.dir / part.file, Variant.FP32
        if part.name in files:
            return files[part.name], Variant.INT8
        # beside the candidates: the budget's working folder, removed with it once the build has decided
        dynamic = next(iter(files.values())).with_name(f"{part.name}.dynamic.onnx")
        if not dynamic.is_file():
            quantize_dynamic_int8(model.dir / part.file, dynamic)
        return dynamic, Variant.INT8_DYNAMIC

    def probe(files: dict[str, Path] | None, with_noise: bool) -> float:
        chosen = {part.name: graph(part, files) for part in model.parts}
        with graph_recognizer(model, chosen, threads) as recognizer:
            if with_noise:
                return corpus_wer(references * noise_draws, [recognizer.transcribe(samples) for samples in noisy]).wer
            return corpus_wer(references, [recognizer.transcribe(samples) for samples in audio]).wer

    return probe


def noisy_copies(utterances: list[Utterance], audio: list[np.ndarray], noise: str, seed: int, draws: int) -> list[np.ndarray]:
    """Every utterance with `noise` added, draw after draw (`draws` seeded draws: the same for every engine compared)."""
    mixer = NoiseMixer(parse_noise(noise), {u.id: a for u, a in zip(utterances, audio)})
    return [mixer.add(samples, noisy_draw(seed, draw, index), utterance.id)
            for draw in range(draws) for index, (utterance, samples) in enumerate(zip(utterances, audio))]


def graph_recognizer(model: ExportedModel, chosen: dict[str, tuple[Path, Variant]], threads: int | None) -> Recognizer:
    """A recognizer over bare graph files (part -> file, variant), Whisper on whole windows: an engine not yet built."""
    engines = {name: load_engine(path, variant=variant, threads=threads, takes_turns=len(chosen) > 1)
               for name, (path, variant) in chosen.items()}
    variant = Variant.INT8 if any(variant.precision != Variant.FP32.precision for _, variant in chosen.values()) else Variant.FP32
    manifest = EngineManifest(
        engine=f"{model.name}-candidate", model=model.name, family=model.family, precision=variant.precision,
        variant=variant, backend=next(iter(engines.values())).backend, front_end=model.front_end.config(),
        decoder=model.decoder, files={name: path.name for name, (path, _) in chosen.items()},
        build={name: {"variant": graph_variant} for name, (_, graph_variant) in chosen.items()}, files_sha256={},
        chunking=model.chunking, folder=model.dir)  # the tokenizer a Whisper decoder names lies in the export folder
    return RECOGNIZERS[model.family](engines, manifest, RecognizerOptions(trim_margin_s=None))
