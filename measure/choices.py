"""What each engine's build decides by measurement: the form of its graphs and how far Whisper's encoder trims.

Two choices in ONNX Runtime's engines trade accuracy for speed, and what they cost depends on the checkpoint:

- the form a graph takes in the CPU int8 engine (families.py `cpu_int8`: Whisper's and Moonshine's encoder with
  int8 weights and activations quantized per call, else fp32);
- Whisper's encoder trim margin: the encoder runs on the audio plus a margin instead of the whole 30 s window
  (8 s cost tiny.en nothing but another checkpoint +0.98 WER points on clean speech).

The build stages an engine in each candidate form, fastest first, and asks the judge made here. The judge
transcribes it, at each candidate margin shortest first, on the first `limit` utterances of the calibration
dataset, clean and with its noise (`noise_draws` seeded draws pooled: 3 draws read tiny.en's int8 encoder at +0.25
noisy points where 8 read +1.04, docs/results/2026-12-06-int8-encoder.md), against the same model's fp32 graphs on
whole windows; the first setting within `budget_points` on clean and noisy speech alike is kept. The engine's last
form also tries the whole window, and is kept whatever it costs. The manifest records every cost measured:
`decoder.trim` the margin's, `int8_forms` the forms' (engines/build.py); the runtime trims by the former.

It lives here, where the runtime and WER meet; `asr-engines build` hands it to the build, which does not import it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from asr_engines.calibration.datasets import load_dataset
from asr_engines.engines.assets import ExportedModel
from asr_engines.engines.build import EngineJudge
from asr_engines.manifest import load_manifest
from asr_engines.measure.int8_probe import graph_recognizer, noisy_copies
from asr_engines.measure.wer import corpus_wer
from asr_engines.runtime.recognizer import load_recognizer
from asr_engines.variants import Variant

log = logging.getLogger(__name__)

#: Margins tried, shortest first (seconds of encoder input past the audio's end).
CANDIDATE_MARGINS_S = (8.0, 16.0)
#: fp32 at or above this clean WER (%) is no model a choice can be judged by (random weights read about 100 %).
UNJUDGEABLE_WER = 90.0


def engine_judge(model: ExportedModel, dataset: Path, noise: str = "study", limit: int = 40, noise_draws: int = 8,
                 budget_points: float = 0.5, margins: tuple[float, ...] = CANDIDATE_MARGINS_S,
                 threads: int | None = None, seed: int = 0) -> EngineJudge:
    """The judge of every engine of `model`; the reference (fp32 graphs, whole windows) is measured once."""
    utterances = load_dataset(dataset)[:limit]
    audio = [utterance.load() for utterance in utterances]
    references = [utterance.text for utterance in utterances]
    noisy = noisy_copies(utterances, audio, noise, seed, noise_draws)
    reference: dict[str, float] = {}

    def wers(recognizer) -> dict[str, float]:
        return {"clean": corpus_wer(references, [recognizer.transcribe(samples) for samples in audio]).wer,
                "noisy": corpus_wer(references * noise_draws, [recognizer.transcribe(samples) for samples in noisy]).wer}

    def judge(manifest_path: Path, last: bool) -> dict:
        manifest = load_manifest(manifest_path)
        trims = bool(manifest.build.get("encoder", {}).get("sliced_positions"))
        if not reference:
            graphs = {part.name: (model.dir / part.file, Variant.FP32) for part in model.parts}
            with graph_recognizer(model, graphs, threads) as recognizer:
                reference.update(wers(recognizer))
        record = {"reference": {"engine": f"{Variant.FP32}" + (", whole window" if trims else ""), **reference},
                  "utterances": len(audio), "noise": noise, "noise_draws": noise_draws, "budget_points": budget_points,
                  "tried": {}, **({"margin_s": None} if trims else {})}
        if reference["clean"] >= UNJUDGEABLE_WER:
            return {**record, "judged": False, "within": False,
                    "note": f"not judged: fp32 reads {reference['clean']:.1f} % on clean speech (random weights?)"}

        def costs_at(margin: float | None) -> dict[str, float]:
            options = {"trim_margin_s": margin} if trims else {}
            with load_recognizer(manifest_path, threads=threads, **options) as recognizer:
                measured = wers(recognizer)
            costs = {f"cost_{kind}": round(measured[kind] - reference[kind], 2) for kind in measured}
            setting = "as built" if not trims else "whole" if margin is None else f"{margin:g}"
            record["tried"][setting] = costs
            log.info("%s (%s): costs %+.2f clean, %+.2f noisy WER points", manifest.engine,
                     setting if not trims or margin is None else f"{setting} s trim", costs["cost_clean"], costs["cost_noisy"])
            return costs

        settings = [*margins, *([None] if last else [])] if trims else [None]
        for setting in settings:
            costs = costs_at(setting)
            within = max(costs.values()) <= budget_points
            if within:
                break
        return {**record, **costs, **({"margin_s": setting} if trims and (within or last) else {}),
                "judged": True, "within": within}

    return judge
