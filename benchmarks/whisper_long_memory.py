"""Whisper long-form memory against the recording's length: a file read as a `Recording` (what `asr-engines
transcribe` does) beside the same file loaded whole into an array.

    .venv/bin/python -m benchmarks.whisper_long_memory [--minutes 10 60] [--runs 2] [--threads 2]

Each recording is the bundled utterances in turn, each followed by 20 s of silence (a meeting's sparse speech:
one utterance per ~30 s window keeps the decoding time, not the memory, small; every window is still decoded).
Each is transcribed by Whisper tiny.en fp32 (ONNX Runtime) in a fresh process per run and mode, whose peak RSS
(VmHWM) is the figure. The last line: `peak_rss_ratio_file=X` (longest over shortest, file mode; goal <= 1.2).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import load_dataset
from asr_engines.measure.wer import corpus_wer
from asr_engines.variants import Precision
from benchmarks.engine_cache import cache_for
from benchmarks.long_audio import WORK, engines_for

ROOT = Path(__file__).resolve().parent.parent
GAP_S = 20.0

RUN = """
import sys, time
from asr_engines import Recording, load_audio, load_recognizer
from asr_engines.measure.memory import max_rss_mb
manifest, path, mode, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with load_recognizer(manifest, threads=threads) as recognizer:
    started = time.perf_counter()
    if mode == "file":
        with Recording(path) as recording:
            text = recognizer.transcribe(recording)
    else:
        text = recognizer.transcribe(load_audio(path))
    print(time.perf_counter() - started, max_rss_mb())
    print(text)
"""


def recording(minutes: float, folder: Path) -> tuple[Path, str]:
    """About `minutes` of the utterances, each followed by GAP_S of silence (whole utterances: it may run a few
    seconds over), as 16 kHz FLAC; and its reference text."""
    path = folder / f"{minutes:g}min.flac"
    target, written, texts = int(minutes * 60 * SAMPLE_RATE), 0, []
    gap = np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)
    utterances = load_dataset()
    with soundfile.SoundFile(path, "w", SAMPLE_RATE, 1, format="FLAC") as out:
        while written < target:
            utterance = utterances[len(texts) % len(utterances)]
            block = np.concatenate([utterance.load(), gap])
            out.write(block)
            written += len(block)
            texts.append(utterance.text)
    return path, " ".join(texts)


def measure(manifest: Path, path: Path, mode: str, threads: int) -> tuple[float, float, str]:
    """Seconds transcribing, peak RSS in MB, and the text, from a fresh process."""
    result = subprocess.run([sys.executable, "-c", RUN, str(manifest), str(path), mode, str(threads)],
                            capture_output=True, text=True, check=True, cwd=ROOT)
    figures, text = result.stdout.split("\n", 1)
    seconds, peak = figures.split()
    return float(seconds), float(peak), text.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "whisper-tiny.en-hf")
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cache_for(WORK)
    manifest = engines_for(str(args.model), "whisper-tiny.en", [Precision.FP32])[Precision.FP32]
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for minutes in args.minutes:
            path, reference = recording(minutes, Path(folder))
            audio_s = soundfile.info(str(path)).duration
            for run in range(args.runs):
                for mode in ("file", "array"):  # interleaved: drift in the machine's load hits both alike
                    started = time.time()
                    seconds, peak, text = measure(manifest, path, mode, args.threads)
                    wer = corpus_wer([reference], [text]).wer
                    rows.setdefault((minutes, mode), []).append((peak, audio_s / seconds, wer))
                    print(f"  {minutes:g} min, {mode}, run {run + 1}: peak RSS {peak:.0f} MB, RTFx {audio_s / seconds:.1f}, "
                          f"WER {wer:.2f} %, load {os.getloadavg()[0]:.1f} ({time.time() - started:.0f} s)", flush=True)
    print(f"\n{'recording':>10}{'mode':>8}{'peak RSS MB (runs)':>24}{'RTFx (runs)':>16}{'WER %':>8}")
    for (minutes, mode), results in rows.items():
        peaks = "/".join(f"{peak:.0f}" for peak, _, _ in results)
        speeds = "/".join(f"{speed:.1f}" for _, speed, _ in results)
        print(f"{minutes:>8g} m{mode:>8}{peaks:>24}{speeds:>16}{results[0][2]:>8.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    shortest, longest = min(args.minutes), max(args.minutes)
    ratio = max(p for p, _, _ in rows[longest, "file"]) / min(p for p, _, _ in rows[shortest, "file"])
    print(f"peak_rss_ratio_file={ratio:.2f} ({longest:g} min over {shortest:g} min, highest over lowest)")


if __name__ == "__main__":
    main()
