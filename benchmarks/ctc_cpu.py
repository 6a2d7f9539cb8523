"""CTC engines against PyTorch on this CPU: wav2vec2-base architecture, the bundled 70 utterances.

    .venv/bin/python -m benchmarks.ctc_cpu [--threads 2] [--limit N] [--passes 3]

Random weights from wav2vec2-base's config (the compute does not depend on the weights; no Hub needed),
exported and built by the pipeline itself. RTFx = audio seconds / seconds spent in features + model +
decoding, one utterance at a time, after one warm-up utterance; every system gets the same thread count in
this one run. Each system reads the set `--passes` times, the systems taking turns pass by pass, and keeps its
fastest pass: on a shared machine a burst of other work slows whichever system runs during it (one pass
per system read int8/fp32 anywhere from 1.93 to 2.63 over five runs of the same engines).
The machine's load is recorded around the passes (measure/machine_load.py; it first waits up to `--settle-s` for
the load average to fall). The last line reads `ratio int8/pytorch_fp32=X.XX int8/fp32=Y.YY load_before=L
other_cores=C comparable=yes|no`: a ratio read while other processes took CPU is not comparable.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from asr_engines import load_recognizer
from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import load_dataset
from asr_engines.engines.backends import make_builder
from asr_engines.engines.build import CalibrationSettings, build_engines
from asr_engines.export import export_onnx, resolve_model
from asr_engines.features import CTCFrontEnd
from asr_engines.measure.machine_load import LoadWatch
from asr_engines.runtime.ctc import CTCDecoder
from asr_engines.variants import PRECISIONS, Precision
from benchmarks.engine_cache import cache_for
from benchmarks.passes import add_pass_options

WORK = Path(__file__).resolve().parent.parent / ".cache" / "bench-ctc"


def rtfx(transcribe, audio: list[np.ndarray]) -> float:
    transcribe(audio[0])
    started = time.perf_counter()
    for samples in audio:
        transcribe(samples)
    return sum(len(samples) for samples in audio) / SAMPLE_RATE / (time.perf_counter() - started)


def pytorch_transcriber(checkpoint: str, decoder: CTCDecoder, threads: int):
    import torch
    from transformers import AutoModelForCTC

    torch.set_num_threads(threads)
    model = AutoModelForCTC.from_pretrained(checkpoint).eval()
    front_end = CTCFrontEnd()

    def transcribe(samples: np.ndarray) -> str:
        with torch.inference_mode():
            logits = model(torch.from_numpy(front_end(samples)["input_values"])).logits
        return decoder(logits[0].numpy())

    return transcribe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pass_options(parser)
    args = parser.parse_args()

    cache_for(WORK)
    source = resolve_model("random:wav2vec2-base")
    onnx_dir, engines_dir = WORK / "onnx", WORK / "engines"
    if not (onnx_dir / "export.json").is_file():
        export_onnx(source, onnx_dir, check=False)
    if not (engines_dir / f"{source.name}-int8.json").is_file():
        build_engines(onnx_dir, engines_dir, make_builder("onnxruntime"), calibration=CalibrationSettings(count=32))
    audio = [utterance.load() for utterance in load_dataset()[: args.limit]]
    print(f"{len(audio)} utterances, {sum(map(len, audio)) / SAMPLE_RATE:.1f} s of audio, {args.threads} threads")

    recognizers = {variant: load_recognizer(engines_dir / f"{source.name}-{variant}.json", threads=args.threads)
                   for variant in PRECISIONS}
    systems = {variant: recognizer.transcribe for variant, recognizer in recognizers.items()}
    systems["pytorch_fp32"] = pytorch_transcriber(source.location, recognizers[Precision.FP32]._decode, args.threads)
    passes: dict[str, list[float]] = {system: [] for system in systems}
    watch = LoadWatch()
    print(f"load average {watch.settle(args.settle_s):.2f} before the passes (waited up to {args.settle_s:.0f} s)", flush=True)
    watch.begin()
    for _ in range(args.passes):
        for system, transcribe in systems.items():
            passes[system].append(rtfx(transcribe, audio))
            watch.tick()
    load = watch.end()
    print("passes: " + "; ".join(f"{system} " + " ".join(f"{value:.1f}" for value in values) for system, values in passes.items()))
    results = {system: max(values) for system, values in passes.items()}

    print(f"{'system':<14}{'RTFx':>8}{'vs pytorch':>12}")
    for system, value in results.items():
        print(f"{system:<14}{value:>8.1f}{value / results['pytorch_fp32']:>11.2f}x")
    int8, fp32 = results[Precision.INT8], results[Precision.FP32]
    print(load.describe())
    print(f"ratio int8/pytorch_fp32={int8 / results['pytorch_fp32']:.2f} int8/fp32={int8 / fp32:.2f} {load.tag()}")


if __name__ == "__main__":
    main()
