"""The encoder trim margin of each Whisper engine, decided when it is built, by measurement.

ONNX Runtime's Whisper encoders can run on the audio plus a margin instead of the whole 30 s window (faster in
proportion). What that costs depends on the checkpoint: 8 s cost tiny.en nothing but cost another checkpoint +0.98
WER points on clean speech. So each engine is transcribed, with each candidate margin, on the first `limit`
utterances of the calibration dataset, clean and with its noise (`noise_draws` seeded draws pooled), against the
same model's fp32 graphs on whole windows; the first margin within `budget_points` on clean and on noisy speech
alike is kept, else the whole window. The manifest's `decoder.trim` records the choice, the costs measured and the
reference; the runtime trims by it unless told otherwise (runtime/whisper.py).

It lives here, where the runtime and WER meet; `asr-engines build` hands it to the build, which does not import it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from asr_engines.calibration.datasets import load_dataset
from asr_engines.calibration.noise import NoiseMixer, noisy_draw, parse_noise
from asr_engines.engines.assets import ExportedModel
from asr_engines.manifest import load_manifest
from asr_engines.measure.int8_probe import graph_recognizer
from asr_engines.measure.wer import corpus_wer
from asr_engines.runtime.recognizer import load_recognizer
from asr_engines.variants import Variant

log = logging.getLogger(__name__)

#: Margins tried, shortest first (seconds of encoder input past the audio's end).
CANDIDATE_MARGINS_S = (8.0, 16.0)
#: fp32 at or above this clean WER (%) is no model a margin can be judged by (random weights read about 100 %).
UNJUDGEABLE_WER = 90.0

#: The staged engine's manifest -> the `decoder.trim` record to add (None: the engine does not trim).
TrimDecider = Callable[[Path], dict | None]


def trim_decider(model: ExportedModel, dataset: Path, noise: str = "study", limit: int = 40, noise_draws: int = 3,
                 budget_points: float = 0.5, margins: tuple[float, ...] = CANDIDATE_MARGINS_S,
                 threads: int | None = None, seed: int = 0) -> TrimDecider:
    """The decider for every engine of `model`; the reference (fp32 graphs, whole windows) is measured once."""
    utterances = load_dataset(dataset)[:limit]
    audio = [utterance.load() for utterance in utterances]
    references = [utterance.text for utterance in utterances]
    mixer = NoiseMixer(parse_noise(noise), {u.id: a for u, a in zip(utterances, audio)})
    noisy = [mixer.add(samples, noisy_draw(seed, draw, index), utterance.id)
             for draw in range(noise_draws) for index, (utterance, samples) in enumerate(zip(utterances, audio))]
    reference: dict[str, float] = {}

    def wers(recognizer) -> dict[str, float]:
        return {"clean": corpus_wer(references, [recognizer.transcribe(samples) for samples in audio]).wer,
                "noisy": corpus_wer(references * noise_draws, [recognizer.transcribe(samples) for samples in noisy]).wer}

    def decide(manifest_path: Path) -> dict | None:
        manifest = load_manifest(manifest_path)
        if manifest.family != "whisper" or not manifest.build["encoder"].get("sliced_positions"):
            return None
        if not reference:
            graphs = {part.name: (model.dir / part.file, Variant.FP32) for part in model.parts}
            with graph_recognizer(model, graphs, threads) as recognizer:
                reference.update(wers(recognizer))
        record = {"reference": {"engine": "fp32, whole window", **reference}, "utterances": len(audio),
                  "noise": noise, "noise_draws": noise_draws, "budget_points": budget_points, "tried": {}}
        if reference["clean"] >= UNJUDGEABLE_WER:
            return {**record, "margin_s": None, "judged": False,
                    "note": f"not judged: fp32 reads {reference['clean']:.1f} % on clean speech (random weights?)"}
        def costs_at(margin: float | None) -> dict[str, float]:
            with load_recognizer(manifest_path, threads=threads, trim_margin_s=margin) as recognizer:
                measured = wers(recognizer)
            costs = {f"cost_{kind}": round(measured[kind] - reference[kind], 2) for kind in measured}
            record["tried"]["whole" if margin is None else f"{margin:g}"] = costs
            log.info("%s: trim margin %s costs %+.2f clean, %+.2f noisy points", manifest.engine,
                     "whole" if margin is None else f"{margin:g} s", costs["cost_clean"], costs["cost_noisy"])
            return costs

        for margin in margins:
            costs = costs_at(margin)
            if max(costs.values()) <= budget_points:
                return {**record, **costs, "margin_s": margin, "judged": True}
        return {**record, **costs_at(None), "margin_s": None, "judged": True}

    return decide
