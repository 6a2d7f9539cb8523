"""Long recordings: WER, speed and peak memory against the recording's length.

    .venv/bin/python -m benchmarks.long_audio [--model ../shared/models/whisper-tiny.en-hf] [--threads 2]

The bundled utterances joined end to end: 30 s (cut), ~5 minutes (all 70, 328 s) and ~10 minutes (all 70
twice). Whisper tiny.en fp32 and int8 read them long-form; the random-weight wav2vec2-base int8 (its real
architecture; its text is meaningless) in 20 s chunks. Each file is transcribed once per engine in a fresh
process (load excluded from RTFx), whose peak RSS (VmHWM) is the figure. WER against the joined references
(Whisper only), beside the per-utterance WER of the same engine on the same utterances. Also the share of
frames whose best token is the same chunked and whole-file on 60 s of real speech (wav2vec2-base).
The last line reads `peak_rss_mb_10min=X whisper_long_wer=Y short_wer=Z`: X the CTC int8 engine's peak on
10 minutes (goal: within 1.2x of its peak on 30 s), Y whisper tiny.en fp32's long-form WER on 10 minutes,
Z its per-utterance WER (goal: Y within 0.5 points of Z).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import load_dataset
from asr_engines.engines.backends import make_builder
from asr_engines.engines.build import CalibrationSettings, build_engines
from asr_engines.export import export_onnx, resolve_model
from asr_engines.processes import in_fresh_process
from asr_engines.variants import Precision
from benchmarks.engine_cache import cache_for

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "bench-long"


def engines_for(model: str, name: str, precisions: list[str]) -> dict[str, Path]:
    onnx_dir, engines_dir = WORK / name / "onnx", WORK / name / "engines"
    if not (onnx_dir / "export.json").is_file():
        export_onnx(resolve_model(model), onnx_dir, check=False)
    manifests = {path.stem.rsplit("-", 1)[-1]: path for path in engines_dir.glob("*.json")}
    if not all(precision in manifests for precision in precisions):
        for manifest in build_engines(onnx_dir, engines_dir, make_builder("onnxruntime"), precisions, CalibrationSettings(count=32)):
            manifests[manifest.stem.rsplit("-", 1)[-1]] = manifest
    return {precision: manifests[precision] for precision in precisions}


def transcribe_file(manifest: str, audio_path: str, threads: int) -> dict:
    """In a fresh process: load, transcribe one file, and report the time and this process's peak RSS."""
    from asr_engines import load_recognizer
    from asr_engines.audio import load_audio
    from asr_engines.measure.memory import max_rss_mb

    audio = load_audio(audio_path)
    recognizer = load_recognizer(manifest, threads=threads)
    started = time.perf_counter()
    text = recognizer.transcribe(audio)
    seconds = time.perf_counter() - started
    return {"text": text, "rtfx": len(audio) / SAMPLE_RATE / seconds, "peak_rss_mb": max_rss_mb()}


def per_utterance_wer(manifest: str, threads: int) -> float:
    from asr_engines import load_recognizer
    from asr_engines.measure.wer import corpus_wer

    recognizer = load_recognizer(manifest, threads=threads, trim_margin_s=None)  # whole windows, as long-form reads
    utterances = load_dataset()
    return corpus_wer([u.text for u in utterances], [recognizer.transcribe(u.load()) for u in utterances]).wer


def chunk_agreement(manifest: str, audio: np.ndarray, threads: int) -> float:
    """Share of frames whose best token is the same read in 20 s chunks and read whole."""
    from asr_engines import load_recognizer

    recognizer = load_recognizer(manifest, threads=threads)
    chunked = recognizer.logits(audio)
    whole = recognizer.engine.run(recognizer._front_end(audio))[recognizer._logits_name][0]
    return float(np.mean(chunked.argmax(-1) == whole.argmax(-1)))


def main() -> None:
    from asr_engines.measure.wer import corpus_wer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "whisper-tiny.en-hf")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    cache_for(WORK)
    whisper = engines_for(str(args.model), "whisper-tiny.en", [Precision.FP32, Precision.INT8])
    ctc = engines_for("random:wav2vec2-base", "wav2vec2-base-random", [Precision.INT8])
    utterances = load_dataset()
    speech = [utterance.load() for utterance in utterances]
    texts = [utterance.text for utterance in utterances]
    with tempfile.TemporaryDirectory() as folder:
        files = {"30 s": (np.concatenate(speech)[: 30 * SAMPLE_RATE], None),
                 "5.5 min": (np.concatenate(speech), " ".join(texts)),
                 "10.9 min": (np.concatenate(speech * 2), " ".join(texts * 2))}
        paths = {}
        for label, (audio, _) in files.items():
            paths[label] = str(Path(folder) / f"{label.replace(' ', '')}.flac")
            soundfile.write(paths[label], audio, SAMPLE_RATE)
        systems = {"whisper tiny.en fp32": whisper[Precision.FP32], "whisper tiny.en int8": whisper[Precision.INT8],
                   "wav2vec2-base int8 (random)": ctc[Precision.INT8]}
        results = {}
        for system, manifest in systems.items():
            for label, (_, reference) in files.items():
                if reference is None and not system.startswith("wav2vec2"):
                    continue
                result = in_fresh_process(transcribe_file, str(manifest), paths[label], args.threads)
                if reference is not None and system.startswith("whisper"):
                    result["wer"] = corpus_wer([reference], [result["text"]]).wer
                results[system, label] = result
                print(f"  {system}, {label}: RTFx {result['rtfx']:.1f}, peak RSS {result['peak_rss_mb']:.0f} MB"
                      + (f", WER {result['wer']:.2f} %" if "wer" in result else ""), flush=True)
    short = {system: in_fresh_process(per_utterance_wer, str(systems[system]), args.threads)
             for system in ("whisper tiny.en fp32", "whisper tiny.en int8")}
    agreement = in_fresh_process(chunk_agreement, str(ctc[Precision.INT8]), np.concatenate(speech)[: 60 * SAMPLE_RATE], args.threads)

    print(f"\n{'system':<30}{'file':>10}{'RTFx':>8}{'peak RSS MB':>13}{'WER %':>8}{'per-utterance WER %':>21}")
    for (system, label), result in results.items():
        wer = f"{result['wer']:.2f}" if "wer" in result else "-"
        per_utterance = f"{short[system]:.2f}" if system in short else "-"
        print(f"{system:<30}{label:>10}{result['rtfx']:>8.1f}{result['peak_rss_mb']:>13.0f}{wer:>8}{per_utterance:>21}")
    ctc_30s, ctc_10min = results["wav2vec2-base int8 (random)", "30 s"], results["wav2vec2-base int8 (random)", "10.9 min"]
    print(f"wav2vec2-base int8 peak RSS, 10.9 min over 30 s: {ctc_10min['peak_rss_mb'] / ctc_30s['peak_rss_mb']:.2f}x")
    print(f"wav2vec2-base int8, 60 s of speech: {100 * agreement:.1f} % of frames keep their best token read in 20 s chunks")
    print(f"peak_rss_mb_10min={ctc_10min['peak_rss_mb']:.0f} whisper_long_wer={results['whisper tiny.en fp32', '10.9 min']['wer']:.2f} "
          f"short_wer={short['whisper tiny.en fp32']:.2f}")


if __name__ == "__main__":
    main()
