"""The WER probe the INT8 budget asks (engines/int8_budget.py): an engine made of candidate graphs, transcribing
the utterances of the calibration dataset the calibration stream did not use, clean and with its noise.

It lives here, where the runtime and WER meet; `python -m engines` hands it to the build.
"""

from __future__ import annotations

from pathlib import Path

from calibration.datasets import load_dataset
from calibration.noise import NoiseMixer, noisy_draw, parse_noise
from calibration.stream import CalibrationStream
from common.variants import Variant
from engines.assets import ExportedModel
from engines.int8_budget import WerProbe
from engines.quantize import quantize_dynamic_int8
from measure.wer import corpus_wer
from runtime.engine import load_engine
from runtime.recognizer import RECOGNIZERS


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
    mixer = NoiseMixer(parse_noise(stream.description["noise"]), {u.id: a for u, a in zip(utterances, audio)})
    noisy = [mixer.add(samples, noisy_draw(stream.description["seed"], draw, index), utterance.id)
             for draw in range(noise_draws) for index, (utterance, samples) in enumerate(zip(utterances, audio))]
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

    def probe(files: dict[str, Path] | None) -> tuple[float, float]:
        chosen = {part.name: graph(part, files) for part in model.parts}
        engines = {name: load_engine(path, variant=variant, threads=threads, takes_turns=len(chosen) > 1)
                   for name, (path, variant) in chosen.items()}
        sidecar = {"engine": f"{model.name}-candidate", "precision": "fp32" if files is None else "int8",
                   "variant": "fp32" if files is None else "int8", "front_end": model.front_end.config(),
                   "decoder": model.decoder, "chunking": model.chunking, "_dir": str(model.dir),
                   "build": {name: {"variant": variant} for name, (_, variant) in chosen.items()}}
        recognizer = RECOGNIZERS[model.family](engines, sidecar, None)
        try:
            clean = corpus_wer(references, [recognizer.transcribe(samples) for samples in audio]).wer
            with_noise = corpus_wer(references * noise_draws, [recognizer.transcribe(samples) for samples in noisy]).wer
        finally:
            recognizer.close()
        return clean, with_noise

    return probe
