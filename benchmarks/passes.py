"""What the speed benchmarks share: their common options, and systems taking turns pass by pass over the same
audio, each keeping its fastest pass, with the machine's load recorded around them (measure/machine_load.py)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from asr_engines.audio import SAMPLE_RATE
from asr_engines.measure.machine_load import LoadWatch, MachineLoad
from asr_engines.measure.wer import corpus_wer

#: audio -> (texts, seconds the texts took)
TimedSystem = Callable[[list[np.ndarray]], tuple[list[str], float]]


def add_pass_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--settle-s", type=float, default=120.0, help="Wait up to this long for a quiet machine first.")


def timed(transcribe: Callable[[np.ndarray], str]) -> TimedSystem:
    """One utterance at a time, after one warm-up utterance."""
    def run(audio: list[np.ndarray]) -> tuple[list[str], float]:
        transcribe(audio[0])
        started = time.perf_counter()
        texts = [transcribe(samples) for samples in audio]
        return texts, time.perf_counter() - started

    return run


def interleaved_passes(systems: dict[str, TimedSystem], audio: list[np.ndarray], references: list[str], passes: int,
                       settle_s: float) -> tuple[dict[str, tuple[float, float]], MachineLoad]:
    """name -> (WER %, best RTFx) over `passes` turns, and the load around them. A WER that moves between passes
    stops the run: the systems are deterministic, so it would mean a broken measurement."""
    audio_s = sum(map(len, audio)) / SAMPLE_RATE
    results: dict[str, tuple[float, float]] = {}
    watch = LoadWatch()
    print(f"load average {watch.settle(settle_s):.2f} before the passes (waited up to {settle_s:.0f} s)", flush=True)
    watch.begin()
    for turn in range(passes):
        for name, system in systems.items():
            texts, seconds = system(audio)
            wer = corpus_wer(references, texts).wer
            if name in results and abs(wer - results[name][0]) > 1e-9:
                raise SystemExit(f"{name}: pass {turn + 1} read {wer:.2f} % WER, pass 1 {results[name][0]:.2f} %")
            results[name] = (wer, max(audio_s / seconds, results.get(name, (0, 0))[1]))
            print(f"  pass {turn + 1} {name}: WER {wer:.2f} %, RTFx {audio_s / seconds:.1f}", flush=True)
            watch.tick()
    return results, watch.end()
