"""Whisper tiny.en on this CPU: our engines against transformers and CTranslate2 (the study's engine).

    .venv/bin/pip install ctranslate2   # the peer; not a dependency of the project
    .venv/bin/python -m benchmarks.whisper_cpu [--model ../shared/models/whisper-tiny.en-hf] [--threads 2] [--limit N] [--passes 3]

The 70 bundled utterances, one at a time, greedy, every system on the same thread count, each reading the set
`--passes` times (the systems take turns pass by pass) and keeping its fastest pass, as ctc_cpu.py does.
RTFx = audio seconds / seconds of features + model + decoding (model load excluded). Every system gets
the same log-mel: transformers' padding (audio padded to 30 s, then the STFT); CTranslate2 is fed those
features too, so the two differ by their arithmetic only (faster-whisper would pad the log-mel instead).
CTranslate2 models are converted from the same Hugging Face weights with its own converter.
Our engines are built as `asr-engines build` builds them by default (the int8 engine's encoder form and each
engine's encoder trim margin decided by measurement against the whole-window fp32 graphs: measure/choices.py)
and run as `load_recognizer` runs them by default, in a process whose ONNX Runtime engines share one thread pool
(`share_thread_pool(--threads)`, as the command line runs them). More figures beside those default rows: the
other choice of window for fp32 and int8 (`whole`, or `trim8` where the default is the whole window), and
`batch8`, eight utterances decoded at a time (`transcribe_batch`; RTFx over the same audio). The last line reads
`ratio best/ct2_int8=X.XX wer_delta=Y.YY`: our fastest default engine (one utterance at a time) within 0.5 WER
points of CTranslate2 int8, its RTFx over CT2 int8's, and its WER minus CT2 int8's (points), then the machine's
load around the passes (`load_before=L other_cores=C comparable=yes|no`, measure/machine_load.py; it first waits
up to `--settle-s` for the load average to fall); the line before it says the same of the other rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from asr_engines import load_recognizer, share_thread_pool
from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import DEFAULT_DATASET, load_dataset
from asr_engines.engines.backends import make_builder
from asr_engines.engines.build import CalibrationSettings, build_engines
from asr_engines.export import export_onnx, resolve_model
from asr_engines.features import WhisperFrontEnd
from asr_engines.manifest import load_manifest
from asr_engines.measure.choices import engine_judge
from asr_engines.variants import PRECISIONS, Precision
from benchmarks.engine_cache import cache_for
from benchmarks.passes import add_pass_options, interleaved_passes, timed

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "bench-whisper"


def timed_batches(transcribe_batch, audio: list[np.ndarray], size: int) -> tuple[list[str], float]:
    transcribe_batch(audio[:size])  # warm-up
    started = time.perf_counter()
    texts = [text for first in range(0, len(audio), size) for text in transcribe_batch(audio[first : first + size])]
    return texts, time.perf_counter() - started


def transformers_system(model_dir: Path, threads: int):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    torch.set_num_threads(threads)
    processor = WhisperProcessor.from_pretrained(model_dir)
    model = WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()

    def transcribe(samples: np.ndarray) -> str:
        features = processor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
        with torch.inference_mode():
            ids = model.generate(features, num_beams=1, do_sample=False)
        return processor.batch_decode(ids, skip_special_tokens=True)[0]

    return transcribe


def ctranslate2_system(model_dir: Path, compute_type: str, threads: int, prompt: list[int]):
    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from tokenizers import Tokenizer

    converted = WORK / "ct2"
    if not (converted / "model.bin").is_file():
        TransformersConverter(str(model_dir)).convert(str(converted), quantization=None, force=True)
    model = ctranslate2.models.Whisper(str(converted), device="cpu", compute_type=compute_type, intra_threads=threads)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    front_end = WhisperFrontEnd()

    def transcribe(samples: np.ndarray) -> str:
        features = ctranslate2.StorageView.from_array(front_end(samples)["input_features"])
        result = model.generate(features, [prompt], beam_size=1, max_length=448)
        return tokenizer.decode(result[0].sequences_ids[0], skip_special_tokens=True).strip()

    return transcribe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "whisper-tiny.en-hf")
    add_pass_options(parser)
    args = parser.parse_args()

    cache_for(WORK)
    source = resolve_model(str(args.model))
    onnx_dir, engines_dir = WORK / "onnx", WORK / "engines"
    if not (onnx_dir / "export.json").is_file():
        export_onnx(source, onnx_dir, check=False)
    int8_manifest = engines_dir / f"{source.name}-int8.json"
    if not int8_manifest.is_file():
        build_engines(onnx_dir, engines_dir, make_builder("onnxruntime"), list(PRECISIONS), CalibrationSettings(count=32),
                      judge=lambda model: engine_judge(model, DEFAULT_DATASET))
    # after the build: ONNX Runtime's quantizer makes sessions of its own, refused once the shared pool exists
    share_thread_pool(args.threads)
    utterances = load_dataset()[: args.limit]
    audio, references = [u.load() for u in utterances], [u.text for u in utterances]
    audio_s = sum(map(len, audio)) / SAMPLE_RATE
    print(f"{len(audio)} utterances, {audio_s:.1f} s of audio, {args.threads} threads")

    systems, opt_in, default_margins = {}, {}, {}
    for variant in PRECISIONS:
        recognizer = load_recognizer(engines_dir / f"{source.name}-{variant}.json", threads=args.threads)
        systems[f"ours_{variant}"], default_margins[variant] = recognizer.transcribe, recognizer.trim_margin_s
    for variant in (Precision.FP32, Precision.INT8):
        manifest = engines_dir / f"{source.name}-{variant}.json"
        other_window = None if default_margins[variant] else 8.0
        name = f"ours_{variant}_{'whole' if other_window is None else 'trim8'}"
        opt_in[name] = load_recognizer(manifest, threads=args.threads, trim_margin_s=other_window).transcribe
        batched = load_recognizer(manifest, threads=args.threads)
        opt_in[f"ours_{variant}_batch8"] = lambda audio, batched=batched: timed_batches(batched.transcribe_batch, audio, 8)
    prompt = load_manifest(engines_dir / f"{source.name}-fp32.json").decoder["prompt"]
    systems["transformers_fp32"] = transformers_system(args.model, args.threads)
    systems["ct2_float32"] = ctranslate2_system(args.model, "float32", args.threads, prompt)
    systems["ct2_int8"] = ctranslate2_system(args.model, "int8", args.threads, prompt)

    timed_systems = {name: system if name.endswith("_batch8") else timed(system) for name, system in {**systems, **opt_in}.items()}
    results, load = interleaved_passes(timed_systems, audio, references, args.passes, args.settle_s)

    print(f"\n{'system':<20}{'WER %':>8}{'RTFx':>8}{'vs ct2_int8':>13}")
    for name, (wer, rtfx) in results.items():
        print(f"{name:<20}{wer:>8.2f}{rtfx:>8.1f}{rtfx / results['ct2_int8'][1]:>12.2f}x")
    print(load.describe())
    ct2_wer, ct2_rtfx = results["ct2_int8"]
    for label, names in (("other", opt_in), ("default", [name for name in systems if name.startswith("ours_")])):
        ours = {name: results[name] for name in names}
        eligible = {name: value for name, value in ours.items() if value[0] <= ct2_wer + 0.5} or ours
        best = max(eligible, key=lambda name: eligible[name][1])
        print(f"best {label}: {best}")
        print(f"{'other ' if label == 'other' else ''}ratio best/ct2_int8={eligible[best][1] / ct2_rtfx:.2f} "
              f"wer_delta={eligible[best][0] - ct2_wer:.2f} {load.tag()}")


if __name__ == "__main__":
    main()
