"""What trimming Whisper's encoder input costs in WER: tiny.en fp32, fp16 and int8, whole window against audio + 8 s.

    .venv/bin/python -m benchmarks.whisper_trim [--draws 24] [--margin 8] [--threads 2] [--variants fp32,fp16,int8]

The engines `benchmarks/whisper_cpu.py` builds (run it first), the 70 bundled utterances clean and with
`--draws` seeded draws of the study's noise, each engine in a fresh process. Noisy WER of tiny.en moves by a
point or more from draw to draw, and a trimmed window now and then loops on one draw and not another: the
trimmed-minus-whole difference, draw for draw, spreads by about 1.5 points, so 8 draws leave its mean
uncertain by 0.5 and 24 by 0.3. The last line reads `trim_cost_fp32=C/N trim_cost_fp16=C/N
trim_cost_int8=C/N`: clean/noisy WER points of the trimmed engine over the whole window; where both stay within
0.5, encoders of that precision trim by default (runtime/whisper.py DEFAULT_TRIM_MARGIN_S; ONNX Runtime's int8
engines keep Whisper's encoder fp32).
"""

from __future__ import annotations

import argparse

import numpy as np

from asr_engines.processes import in_fresh_process
from benchmarks.engine_cache import is_current
from benchmarks.int8_calibration import wers
from benchmarks.whisper_cpu import WORK as WHISPER_CACHE

ENGINES = WHISPER_CACHE / "engines"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=24)
    parser.add_argument("--margin", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="fp32,fp16,int8")
    args = parser.parse_args()
    costs = {}
    print(f"{'engine':<8}{'margin':>14}{'WER clean %':>13}{'WER noisy %':>18}  per draw")
    for variant in args.variants.split(","):
        manifest = next(ENGINES.glob(f"*-{variant}.json"), None)
        if manifest is None or not is_current(WHISPER_CACHE):
            raise SystemExit(f"no {variant} engine of the current code in {ENGINES}: run benchmarks/whisper_cpu.py first")
        results = {margin: in_fresh_process(wers, str(manifest), args.threads, args.draws, margin) for margin in (None, args.margin)}
        for margin, (clean, noisy) in results.items():
            label = "whole window" if margin is None else f"{margin:g} s"
            print(f"{variant:<8}{label:>14}{clean:>13.2f}{np.mean(noisy):>11.2f} ± {np.std(noisy, ddof=1):.2f}  "
                  + " ".join(f"{value:.2f}" for value in noisy))
        (whole_clean, whole_noisy), (trim_clean, trim_noisy) = results.values()
        costs[variant] = f"{trim_clean - whole_clean:+.2f}/{np.mean(trim_noisy) - np.mean(whole_noisy):+.2f}"
    print(" ".join(f"trim_cost_{variant}={cost}" for variant, cost in costs.items()))


if __name__ == "__main__":
    main()
