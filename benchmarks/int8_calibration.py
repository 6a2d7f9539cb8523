"""What the calibration stream's noisy share and the WER budget buy Whisper tiny.en's int8 engine.

    .venv/bin/python -m benchmarks.int8_calibration [--model ../shared/models/whisper-tiny.en-hf] [--threads 2] [--draws 3]

int8 engines calibrated on 32 utterances of which 0 %, 50 % and 100 % carry the study's noise, measured in the
form TensorRT builds from (ONNX Runtime's Q/DQ file: symmetric, per-channel weights; its decoders fp32, so the
WER moves with the encoder's int8 alone; ONNX Runtime's CPU int8 engine keeps Whisper's encoder fp32), with
the rule alone (--int8-budget off), and the 50 % one with the 0.5-point WER budget; each transcribes the 70
bundled utterances clean and with `--draws` seeded draws of the study's noise (the noisy WER is their mean),
beside fp32. The calibration utterances are among the 70: the budget's own judgement is on
the 38 it did not use (its rounds are printed while it builds). The last line reads
`int8_cost_clean=X int8_cost_noisy=Y` for the budgeted engine (WER points over fp32).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from asr_engines.calibration.datasets import load_dataset
from asr_engines.calibration.noise import NoiseMixer, noisy_draw, parse_noise
from asr_engines.engines.backends import make_builder
from asr_engines.engines.build import CalibrationSettings, build_engines
from asr_engines.engines.int8.budget import Int8Budget
from asr_engines.export import export_onnx, resolve_model
from asr_engines.processes import in_fresh_process
from asr_engines.variants import Precision, Variant
from benchmarks.engine_cache import cache_for

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "bench-int8-calibration"


def wers(manifest: str, threads: int, draws: int, trim_margin_s: float | None = None) -> tuple[float, list[float]]:
    """Clean WER and the noisy WER of each draw over the 70 bundled utterances (`trim_margin_s`: see
    runtime/whisper.py; None, as here by default, the whole window for every engine compared)."""
    from asr_engines import load_recognizer
    from asr_engines.measure.wer import corpus_wer

    recognizer = load_recognizer(manifest, threads=threads, trim_margin_s=trim_margin_s)
    utterances = load_dataset()
    audio = [utterance.load() for utterance in utterances]
    references = [utterance.text for utterance in utterances]
    mixer = NoiseMixer(parse_noise("study"))
    clean = corpus_wer(references, [recognizer.transcribe(samples) for samples in audio]).wer
    noisy = [corpus_wer(references, [recognizer.transcribe(mixer.add(samples, noisy_draw(0, draw, index)))
                                     for index, samples in enumerate(audio)]).wer for draw in range(draws)]
    return clean, noisy


def build(onnx_dir: Path, name: str, precision: Precision, noisy_fraction: float, budget: bool, threads: int) -> Path:
    out = WORK / name
    if not (out / "done").is_file():
        probe = None
        if budget:
            from asr_engines.measure.int8_probe import held_out_probe

            def probe(model, stream):
                return held_out_probe(model, stream, 40, threads)
        manifests = build_engines(onnx_dir, out, make_builder("onnxruntime"), [precision],
                                 CalibrationSettings(noisy_fraction=noisy_fraction), progress=False, int8_probe=probe,
                                 int8_budget=Int8Budget(0.5) if budget else None)
        (out / "done").write_text(str(manifests[-1]))  # int8: the Q/DQ form, after the CPU one
    return Path((out / "done").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "whisper-tiny.en-hf")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args()
    onnx_dir = cache_for(WORK) / "onnx"
    if not (onnx_dir / "export.json").is_file():
        export_onnx(resolve_model(str(args.model)), onnx_dir, check=False)
    reference = str(Precision.FP32)
    engines = {reference: build(onnx_dir, reference, Precision.FP32, 0.5, False, args.threads)}
    for fraction in (0.0, 0.5, 1.0):
        engines[f"int8, {fraction:.0%} noisy calibration"] = build(onnx_dir, f"int8-noisy{fraction:.0%}", Precision.INT8, fraction,
                                                                  False, args.threads)
    engines["int8, 50% noisy, WER budget 0.5"] = build(onnx_dir, "int8-budget", Precision.INT8, 0.5, True, args.threads)
    results = {name: in_fresh_process(wers, str(manifest), args.threads, args.draws) for name, manifest in engines.items()}
    base_clean, base_noisy = results[reference][0], float(np.mean(results[reference][1]))
    print(f"\n{'engine':<36}{'WER clean %':>12}{'WER noisy %':>18}{'cost clean':>12}{'cost noisy':>12}{'float nodes':>13}")
    for name, (clean, noisy) in results.items():
        manifest = json.loads(engines[name].read_text())
        floats = sum(len(build.get("float_nodes") or {}) for build in manifest["build"].values() if Variant(build["variant"]).calibrated)
        print(f"{name:<36}{clean:>12.2f}{np.mean(noisy):>11.2f} ± {np.std(noisy, ddof=1):.2f}{clean - base_clean:>+12.2f}"
              f"{np.mean(noisy) - base_noisy:>+12.2f}{floats if name != reference else '-':>13}")
    clean, noisy = results["int8, 50% noisy, WER budget 0.5"]
    print(f"int8_cost_clean={clean - base_clean:.2f} int8_cost_noisy={np.mean(noisy) - base_noisy:.2f}")


if __name__ == "__main__":
    main()
