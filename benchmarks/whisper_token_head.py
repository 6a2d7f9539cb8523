"""The greedy head on ONNX Runtime's CPU engines: the same tokens, and whether choosing the token inside the graph
is faster than copying the logits out and choosing here.

    .venv/bin/python -m benchmarks.whisper_token_head [--repeats 2]

whisper tiny.en's fp32 and int8 engines as benchmarks/whisper_cpu.py builds them (run it first; its cache must
match the current engine code), the 70 bundled clean utterances one at a time,
each engine decoded the two ways in alternation (`greedy head`: the recognizer as it is; `logits`: the head's
outputs ignored, the logits read back and the token chosen on the host, as before the head), `--repeats` times.
Prints per engine and way the wall time of a pass (lowest and highest), RTFx of the slower, and whether every
utterance got the same tokens both ways; the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import time

from asr_engines import load_recognizer
from asr_engines.calibration.datasets import load_dataset
from asr_engines.variants import Precision
from benchmarks.engine_cache import is_current
from benchmarks.whisper_cpu import WORK as WHISPER_CACHE


def decode_all(recognizer, audio: list, head: bool) -> tuple[float, list[list[int]]]:
    recognizer.token_head = head
    started = time.perf_counter()
    tokens = [recognizer.generate(samples) for samples in audio]
    return time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    manifests = [next((WHISPER_CACHE / "engines").glob(f"*-{precision.value}.json"), None)
                 for precision in (Precision.FP32, Precision.INT8)]
    if None in manifests or not is_current(WHISPER_CACHE):
        raise SystemExit(f"no engines of the current code in {WHISPER_CACHE / 'engines'}: run benchmarks/whisper_cpu.py first")
    audio = [utterance.load() for utterance in load_dataset()]
    seconds = sum(len(samples) for samples in audio) / 16_000
    load_before = os.getloadavg()[0]
    print(f"whisper tiny.en, {len(audio)} utterances ({seconds:.0f} s), batch 1, 2 threads, {args.repeats} passes per way")
    print(f"{'engine':<34}{'way':<13}{'pass s (low-high)':>20}{'RTFx':>7}{'same tokens':>13}")
    for manifest in manifests:
        with load_recognizer(manifest, threads=2, trim_margin_s=None) as recognizer:
            recognizer.generate(audio[0])  # warm-up
            times = {"greedy head": [], "logits": []}
            tokens = {}
            for _ in range(args.repeats):
                for way in times:
                    elapsed, tokens[way] = decode_all(recognizer, audio, way == "greedy head")
                    times[way].append(elapsed)
            same = sum(a == b for a, b in zip(tokens["greedy head"], tokens["logits"]))
            for way, elapsed in times.items():
                print(f"{manifest.stem:<34}{way:<13}{f'{min(elapsed):.2f}-{max(elapsed):.2f}':>20}"
                      f"{seconds / max(elapsed):>7.1f}{f'{same}/{len(audio)}':>13}")
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
