"""What the runtime needs besides the graph, read once from the export folder into the sidecar.

The runtime then needs neither transformers nor the processor files: the CTC vocabulary and the
front end's settings travel inside the sidecar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from common.audio import SAMPLE_RATE
from common.features import CTCFrontEnd, FrontEnd, WhisperFrontEnd
from common.variants import Variant

#: CTC models read long recordings in chunks of this many seconds, overlapping by STRIDE_S on each side (the
#: Hugging Face pipeline's scheme); memory then follows the chunk, not the recording.
CTC_CHUNK_S, CTC_STRIDE_S = 20.0, 4.0


class AssetsError(ValueError):
    """The export folder lacks a file the engines need."""


@dataclass(frozen=True)
class GraphPart:
    """One ONNX graph of an engine. `calibrated` parts are quantized from the calibration stream in the
    calibrated int8 forms (TensorRT's plan, the Q/DQ file) and judged by the INT8 WER budget; the others are built
    as the backend chooses (see Builder.part_variant). `cpu_int8`: what ONNX Runtime's CPU int8 engine builds
    the graph as."""

    name: str
    file: str
    calibrated: bool = True
    sliced_positions: bool = False  # Whisper's encoder: ONNX Runtime engines take fewer frames (encoder_positions.py)
    cpu_int8: Variant = Variant.INT8


@dataclass(frozen=True)
class ExportedModel:
    """An export folder read once: the graphs engines are built from, and what the runtime needs besides them."""

    dir: Path
    name: str
    source: str
    family: str
    parts: tuple[GraphPart, ...]
    front_end: FrontEnd
    decoder: dict
    chunking: dict | None  # CTC: {"chunk_s", "stride_s"}; Whisper reads long recordings long-form instead


def read_exported_model(onnx_dir: Path) -> ExportedModel:
    """The model exported in `onnx_dir` by `python -m export` (AssetsError if a file is missing)."""
    export = read_export(onnx_dir)
    family = export["family"]
    parts = graph_parts(export)
    for part in parts:
        check_graph(onnx_dir / part.file)
    chunking = {"chunk_s": CTC_CHUNK_S, "stride_s": CTC_STRIDE_S} if family == "ctc" else None
    return ExportedModel(onnx_dir, export["model"], export["source"], family, parts,
                         front_end(onnx_dir, family), decoder(onnx_dir, family), chunking)


def check_graph(path: Path) -> None:
    """Refuse a missing, truncated or corrupt ONNX file before anything is built from it."""
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise AssetsError(f"{path}: missing (the export writes it; re-export)")
    try:
        onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, OSError) as error:
        raise AssetsError(f"{path}: not a readable ONNX file, truncated or corrupt ({type(error).__name__}); re-export it") from None


def read_export(onnx_dir: Path) -> dict:
    """The export report (`export.json`) that `python -m export` wrote."""
    try:
        return json.loads((onnx_dir / "export.json").read_text())
    except FileNotFoundError:
        raise AssetsError(f"{onnx_dir}: no export.json; make it with `python -m export MODEL --out {onnx_dir}`") from None


#: Whisper's decoders take no calibration stream: their inputs are tokens and a KV cache, not audio; on a CPU they
#: take int8 weights with activations quantized per call. Its encoder stays fp32 in the CPU int8 engine: in int8
#: it cost tiny.en +0.98 noisy WER points over fp32 on the whole window (a 1e-6 change of its input moves its int8
#: output 24 dB: each build is one draw of rounding noise) and +1.8 trimmed, while trimmed windows left it little
#: to speed up (fp32 encoder and int8 decoders 43-45 RTFx, int8 encoder 52; README, Whisper).
PARTS = {
    "ctc": (GraphPart("model", "model.onnx"),),
    "whisper": (GraphPart("encoder", "encoder_model.onnx", sliced_positions=True, cpu_int8=Variant.FP32),
                GraphPart("decoder", "decoder_model.onnx", False, cpu_int8=Variant.INT8_DYNAMIC),
                GraphPart("decoder_with_past", "decoder_with_past_model.onnx", False, cpu_int8=Variant.INT8_DYNAMIC)),
}


def graph_parts(export: dict) -> tuple[GraphPart, ...]:
    """The ONNX graphs an engine is made of."""
    if export["family"] not in PARTS:
        raise AssetsError(f"model family {export['family']!r} has no engine layout")
    return PARTS[export["family"]]


def front_end(onnx_dir: Path, family: str) -> FrontEnd:
    """The model's front end, as its processor config says."""
    config = _json(onnx_dir, "preprocessor_config.json")
    if config.get("sampling_rate", SAMPLE_RATE) != SAMPLE_RATE:
        raise AssetsError(f"{onnx_dir}: the model expects {config['sampling_rate']} Hz audio; the pipeline feeds {SAMPLE_RATE} Hz")
    if family == "whisper":
        return WhisperFrontEnd(num_mel_bins=config.get("feature_size", 80), n_fft=config.get("n_fft", 400),
                               hop_length=config.get("hop_length", 160), chunk_s=config.get("chunk_length", 30))
    return CTCFrontEnd(do_normalize=bool(config.get("do_normalize", True)))


def decoder(onnx_dir: Path, family: str) -> dict:
    """What turns the engine's outputs into text, for the sidecar."""
    return whisper_decoder(onnx_dir) if family == "whisper" else ctc_decoder(onnx_dir)


def whisper_decoder(onnx_dir: Path) -> dict:
    """Greedy decoding settings from generation_config.json: prompt, end, suppressed tokens, length, timestamps.

    English-only models start `<|startoftranscript|><|notimestamps|>`; multilingual ones
    `<|startoftranscript|><|en|><|transcribe|><|notimestamps|>`. Long-form decoding (over 30 s) uses the prompt
    without `<|notimestamps|>`, so the model writes timestamps. The tokenizer file travels beside the engine.
    """
    generation = _json(onnx_dir, "generation_config.json")
    prompt = [generation["decoder_start_token_id"]]
    if generation.get("is_multilingual"):
        prompt += [generation["lang_to_id"]["<|en|>"], generation["task_to_id"]["transcribe"]]
    prompt.append(generation["no_timestamps_token_id"])
    if not (onnx_dir / "tokenizer.json").is_file():
        raise AssetsError(f"{onnx_dir}: missing tokenizer.json (the export writes the processor files beside the ONNX)")
    return {
        "kind": "whisper",
        "prompt": prompt,
        "eos_id": generation["eos_token_id"],
        "suppress_tokens": generation.get("suppress_tokens") or [],
        "begin_suppress_tokens": generation.get("begin_suppress_tokens") or [],
        "max_length": generation.get("max_length", 448),
        "timestamp_prompt": prompt[:-1],
        "no_timestamps_id": generation["no_timestamps_token_id"],
        "max_initial_timestamp_index": generation.get("max_initial_timestamp_index", 50),
        "tokenizer": "tokenizer.json",
    }


def ctc_decoder(onnx_dir: Path) -> dict:
    """The CTC vocabulary (token by id), blank id, word delimiter and tokens dropped from text."""
    vocab = _json(onnx_dir, "vocab.json")
    if vocab and all(isinstance(value, dict) for value in vocab.values()):
        raise AssetsError(f"{onnx_dir}/vocab.json is multilingual (one vocabulary per language); pick one first")
    settings = _json(onnx_dir, "tokenizer_config.json")
    tokens = [""] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        tokens[index] = token
    pad = settings.get("pad_token", "<pad>")
    special = {settings.get(key) for key in ("bos_token", "eos_token", "unk_token", "pad_token")}
    return {
        "kind": "ctc",
        "vocabulary": tokens,
        "blank_id": vocab.get(pad, 0),
        "word_delimiter": settings.get("word_delimiter_token", "|"),
        "dropped_tokens": sorted(token for token in special if token in vocab),
    }


def _json(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssetsError(f"{folder}: missing {name} (the export writes the processor files beside the ONNX)") from None
