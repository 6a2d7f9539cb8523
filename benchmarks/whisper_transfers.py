"""Bytes Whisper moves between host and device per token through the TensorRT runtime, counted on stand-ins.

    .venv/bin/python -m benchmarks.whisper_transfers [--model ../shared/models/whisper-tiny.en-hf] [--limit 10]

whisper tiny.en's three exported graphs run through our TensorRTEngine over stand-in plans (ONNX Runtime
executes each graph on bytes held in a stand-in GPU; stand_ins/tensorrt.py) and every host<->device copy
is counted, for the bundled utterances one at a time (batch 1). Three ways of driving the same engines:
`greedy head` is the recognizer as it is (run_device: encoder output, cross- and self-attention K/V stay on
the device; the decoders choose the token, so only token ids go in and a token id and its log-probability come
out); `logits` the same without the head (the logits copied back, the token chosen on the host); `host round
trips` feeds every graph host arrays and copies every output back. Per token = per decoder step (the first
decoder's step and each step with the KV cache), the decoders' copies only; the features in (once per 30 s
window) are shown apart. All three must give the same tokens. The last line reads
`h2d_bytes_per_token=X d2h_bytes_per_token=Y` for the greedy head (goal: X <= 64, Y <= 64).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from asr_engines.calibration.datasets import load_dataset
from asr_engines.engines.backends import make_builder
from asr_engines.engines.build import build_engines
from asr_engines.export import export_onnx, resolve_model
from asr_engines.manifest import EngineManifest, load_manifest
from asr_engines.runtime.engine import DeviceTensor
from asr_engines.variants import Precision
from stand_ins.tensorrt import bytes_per_token, stand_in_whisper

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".cache" / "bench-whisper-transfers"


class HostRoundTrips:
    """An engine driven the old way: every input from host arrays, every output copied back to the host."""

    def __init__(self, engine):
        self.engine = engine

    def run_device(self, feeds, to_host=()):
        host = {name: value.handle if isinstance(value, DeviceTensor) else value for name, value in feeds.items()}
        outputs = self.engine.run_device(host, [info.name for info in self.engine.outputs])[0]
        return outputs, {name: DeviceTensor("host", array.shape, array.dtype.name, array) for name, array in outputs.items()}

    def __getattr__(self, name: str):
        return getattr(self.engine, name)


def measure(onnx_dir: Path, manifest: EngineManifest, audio: list, way: str) -> dict:
    recognizer, _, log = stand_in_whisper(onnx_dir, manifest)
    recognizer.token_head = way == "greedy head"
    if way == "host round trips":
        for part in ("encoder", "decoder", "decoder_with_past"):
            setattr(recognizer, part, HostRoundTrips(getattr(recognizer, part)))
    tokens = [recognizer.generate(samples) for samples in audio]
    h2d, d2h = bytes_per_token(log)
    return {"h2d": h2d, "d2h": d2h, "features": log["encoder"]["h2d"] / log["encoder"]["runs"],
            "encoder_out": log["encoder"]["d2h"] / log["encoder"]["runs"], "tokens": tokens,
            "steps": log["decoder"]["runs"] + log["decoder_with_past"]["runs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "whisper-tiny.en-hf")
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()

    onnx_dir = WORK / "onnx"
    if not (onnx_dir / "export.json").is_file():
        export_onnx(resolve_model(str(args.model)), onnx_dir, check=False)
    (sidecar_path,) = build_engines(onnx_dir, WORK / "engines", make_builder("onnxruntime"), [Precision.FP32], progress=False)
    manifest = load_manifest(sidecar_path)
    audio = [utterance.load() for utterance in load_dataset()[: args.limit]]
    print(f"{manifest.model}, {len(audio)} utterances, batch 1, stand-in plans")
    results = {way: measure(onnx_dir, manifest, audio, way) for way in ("host round trips", "logits", "greedy head")}
    same = all(result["tokens"] == results["logits"]["tokens"] for result in results.values())
    print(f"the same tokens all three ways: {same} ({sum(map(len, results['logits']['tokens']))} tokens)")
    print(f"\n{'way':<18}{'h2d B/token':>14}{'d2h B/token':>14}{'features B/window':>19}{'encoder out B/window':>22}{'steps':>7}")
    for way, result in results.items():
        print(f"{way:<18}{result['h2d']:>14,.0f}{result['d2h']:>14,.0f}{result['features']:>19,.0f}"
              f"{result['encoder_out']:>22,.0f}{result['steps']:>7}")
    device = results["greedy head"]
    print(f"h2d_bytes_per_token={device['h2d']:.0f} d2h_bytes_per_token={device['d2h']:.0f}")


if __name__ == "__main__":
    main()
