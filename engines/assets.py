"""What the runtime needs besides the graph, read once from the export folder into the engine's manifest.

The runtime then needs neither transformers nor the processor files: the CTC vocabulary and the
front end's settings travel inside the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from asr_engines.audio import SAMPLE_RATE
from asr_engines.families import FAMILIES, GraphPart
from asr_engines.features import FrontEnd

#: The most tokens a Moonshine decode writes per second of audio, as Moonshine's own runtimes bound it (read
#: English runs near 3 per second on its tokenizer), so a decode that loops stops within seconds' worth.
MOONSHINE_TOKENS_PER_S = 6.5


class AssetsError(ValueError):
    """The export folder lacks a file the engines need."""


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
    """The model exported in `onnx_dir` by `asr-engines export` (AssetsError if a file is missing)."""
    export = read_export(onnx_dir)
    family = export["family"]
    parts = graph_parts(export)
    for part in parts:
        check_graph(onnx_dir / part.file)
    return ExportedModel(onnx_dir, export["model"], export["source"], family, parts,
                         front_end(onnx_dir, family), decoder(onnx_dir, family), FAMILIES[family].chunking)


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
    """The export report (`export.json`) that `asr-engines export` wrote."""
    try:
        return json.loads((onnx_dir / "export.json").read_text())
    except FileNotFoundError:
        raise AssetsError(f"{onnx_dir}: no export.json; make it with `asr-engines export MODEL --out {onnx_dir}`") from None


def graph_parts(export: dict) -> tuple[GraphPart, ...]:
    """The ONNX graphs an engine is made of."""
    if export["family"] not in FAMILIES:
        raise AssetsError(f"model family {export['family']!r} has no engine layout")
    return FAMILIES[export["family"]].graphs


def front_end(onnx_dir: Path, family: str) -> FrontEnd:
    """The model's front end, as its processor config says."""
    config = _json(onnx_dir, "preprocessor_config.json")
    if config.get("sampling_rate", SAMPLE_RATE) != SAMPLE_RATE:
        raise AssetsError(f"{onnx_dir}: the model expects {config['sampling_rate']} Hz audio; the pipeline feeds {SAMPLE_RATE} Hz")
    return FAMILIES[family].front_end(config)


def decoder(onnx_dir: Path, family: str) -> dict:
    """What turns the engine's outputs into text, for the manifest."""
    return DECODER_SETTINGS[family](onnx_dir)


def whisper_decoder(onnx_dir: Path) -> dict:
    """Greedy decoding settings from generation_config.json: prompt, end, suppressed tokens, length, timestamps.

    `prompt`: English-only models start `<|startoftranscript|><|notimestamps|>`, multilingual ones (asked for
    English) `<|startoftranscript|><|en|><|transcribe|><|notimestamps|>`. What the runtime starts from besides
    (runtime/whisper_prompt.py): `forced_start`, the language tokens and the task tokens, so a multilingual engine
    detects or is told its language and task as transformers' `generate` is. Long-form decoding (over 30 s) drops
    `<|notimestamps|>`, so the model writes timestamps. The tokenizer file travels beside the engine.
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
        "forced_start": forced_start(generation, _json(onnx_dir, "config.json")),
        "languages": generation.get("lang_to_id") or {},
        "tasks": generation.get("task_to_id") or {},
        "eos_id": generation["eos_token_id"],
        "suppress_tokens": generation.get("suppress_tokens") or [],
        "begin_suppress_tokens": generation.get("begin_suppress_tokens") or [],
        "max_length": generation.get("max_length", 448),
        "timestamp_prompt": prompt[:-1],
        "no_timestamps_id": generation["no_timestamps_token_id"],
        "max_initial_timestamp_index": generation.get("max_initial_timestamp_index", 50),
        "tokenizer": "tokenizer.json",
    }


def forced_start(generation: dict, config: dict) -> list[int | None]:
    """The tokens `generate` forces after the start token when asked for no language and no task: the generation
    config's `forced_decoder_ids` (else the model config's) at positions 1, 2, ... (None: the language, detected)."""
    forced = generation.get("forced_decoder_ids") or config.get("forced_decoder_ids") or []
    tokens = []
    for position, (index, token) in enumerate(forced, start=1):
        if index != position:
            break
        tokens.append(token)
    return tokens


def moonshine_decoder(onnx_dir: Path) -> dict:
    """Greedy decoding settings: the start and end tokens, the most tokens per second of audio a decode may write,
    the longest sequence its positions allow. The tokenizer file travels beside the engine."""
    generation = _json(onnx_dir, "generation_config.json")
    config = _json(onnx_dir, "config.json")
    if not (onnx_dir / "tokenizer.json").is_file():
        raise AssetsError(f"{onnx_dir}: missing tokenizer.json (the export writes the processor files beside the ONNX)")
    return {
        "kind": "moonshine",
        "start_id": generation.get("decoder_start_token_id", config.get("decoder_start_token_id", 1)),
        "eos_id": generation.get("eos_token_id", config.get("eos_token_id", 2)),
        "max_tokens_per_s": MOONSHINE_TOKENS_PER_S,
        "max_length": config.get("max_position_embeddings", 512),
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


#: model family -> what its decoder settings are read from. A new family is a new line here.
DECODER_SETTINGS = {"ctc": ctc_decoder, "whisper": whisper_decoder, "moonshine": moonshine_decoder}
