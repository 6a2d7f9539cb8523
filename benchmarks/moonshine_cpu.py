"""Moonshine base on this CPU: our engines against Moonshine's own ONNX runtime, on the same weights.

    .venv/bin/pip install --no-deps --require-hashes -r benchmarks/moonshine_peer.txt   # the peer, pinned
    .venv/bin/python -m benchmarks.moonshine_cpu [--threads 2] [--limit N] [--passes 3]

Both sides read the pinned moonshine-cpp wheel (export/moonshine_cpp.py, fetched once into .cache/wheels). The
peer, `useful-moonshine-onnx`, runs the wheel's own `.ort` files (`model_format="ort"`: the int8-stored encoder and
merged decoder, greedy, its tokenizer); ours are the fp32, fp16 and int8 engines built from the checkpoint converted
from those files as `asr-engines build` builds them by default (the int8 engine's encoder form decided by
measurement: measure/choices.py), run as `load_recognizer` runs them. The peer makes its ONNX Runtime sessions with the library's
defaults (one intra-op thread per core: 2 here, as `--threads`).

The 70 bundled utterances, one at a time, each system reading the set `--passes` times (the systems take turns pass
by pass) and keeping its fastest pass, as whisper_cpu.py does. RTFx = audio seconds / seconds of the whole
transcription (model load excluded). The last line reads `ratio best/peer=X.XX wer_delta=Y.YY` (our fastest engine
within 0.3 WER points of the peer, its RTFx over the peer's, its WER minus the peer's) and the machine's load around
the passes (`load_before=L other_cores=C comparable=yes|no`, measure/machine_load.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from asr_engines import load_recognizer
from asr_engines.audio import SAMPLE_RATE
from asr_engines.calibration.datasets import DEFAULT_DATASET, load_dataset
from asr_engines.engines.backends import make_builder
from asr_engines.engines.build import build_engines
from asr_engines.export import export_onnx, resolve_model
from asr_engines.export.moonshine_cpp import convert, fetch_wheel, read_wheel
from asr_engines.measure.choices import engine_judge
from asr_engines.variants import PRECISIONS
from benchmarks.engine_cache import cache_for
from benchmarks.passes import add_pass_options, interleaved_passes, timed

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "moonshine_cpu"
#: The peer's own bound on a decode (its `generate` default).
PEER_MAX_TOKENS = 192


def peer_system(wheel: Path):
    """useful-moonshine-onnx on the wheel's `.ort` files, as its `transcribe` runs them, minus its file loading."""
    from moonshine_onnx import MoonshineOnnxModel, load_tokenizer

    files = WORK / "ort"
    if not (files / "decoder_model_merged.ort").is_file():
        files.mkdir(parents=True, exist_ok=True)
        for name, data in read_wheel(wheel).items():
            if name.endswith(".ort"):
                (files / f".{name}").write_bytes(data)
                (files / f".{name}").rename(files / name)
    model = MoonshineOnnxModel(models_dir=str(files), model_name="base", model_format="ort")
    tokenizer = load_tokenizer()

    def transcribe(samples: np.ndarray) -> str:
        tokens = model.generate(samples[np.newaxis].astype(np.float32), max_len=PEER_MAX_TOKENS)
        return tokenizer.decode_batch(tokens)[0].strip()

    return transcribe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pass_options(parser)
    args = parser.parse_args()

    cache_for(WORK)
    wheel = fetch_wheel()
    checkpoint, onnx_dir, engines_dir = WORK / "moonshine-base", WORK / "onnx", WORK / "engines"
    if not (checkpoint / "config.json").is_file():
        convert(wheel, checkpoint)
    source = resolve_model(str(checkpoint))
    if not (onnx_dir / "export.json").is_file():
        export_onnx(source, onnx_dir, check=False)
    if not all((engines_dir / f"{source.name}-{variant}.json").is_file() for variant in PRECISIONS):
        build_engines(onnx_dir, engines_dir, make_builder("onnxruntime"), list(PRECISIONS),
                      judge=lambda model: engine_judge(model, DEFAULT_DATASET))
    utterances = load_dataset()[: args.limit]
    audio, references = [u.load() for u in utterances], [u.text for u in utterances]
    audio_s = sum(map(len, audio)) / SAMPLE_RATE
    print(f"{len(audio)} utterances, {audio_s:.1f} s of audio, {args.threads} threads")

    systems = {f"ours_{variant}": timed(load_recognizer(engines_dir / f"{source.name}-{variant}.json", threads=args.threads).transcribe)
               for variant in PRECISIONS}
    systems["peer_ort"] = timed(peer_system(wheel))

    results, load = interleaved_passes(systems, audio, references, args.passes, args.settle_s)

    print(f"\n{'system':<14}{'WER %':>8}{'RTFx':>8}{'vs peer':>10}")
    for name, (wer, rtfx) in results.items():
        print(f"{name:<14}{wer:>8.2f}{rtfx:>8.1f}{rtfx / results['peer_ort'][1]:>9.2f}x")
    print(load.describe())
    peer_wer, peer_rtfx = results["peer_ort"]
    eligible = {name: value for name, value in results.items() if name.startswith("ours_") and value[0] <= peer_wer + 0.3}
    if not eligible:
        print(f"ratio best/peer=none (no engine of ours within 0.3 WER points of the peer's {peer_wer:.2f} %) {load.tag()}")
        return
    best = max(eligible, key=lambda name: eligible[name][1])
    print(f"best: {best}")
    print(f"ratio best/peer={eligible[best][1] / peer_rtfx:.2f} wer_delta={eligible[best][0] - peer_wer:.2f} {load.tag()}")


if __name__ == "__main__":
    main()
